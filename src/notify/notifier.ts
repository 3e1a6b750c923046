/**
 * Sends events to every configured channel (desktop, ntfy, webhook). Events
 * arriving within `groupSeconds` of the first go out together as one
 * notification. A channel that fails is logged and the others still get it.
 */
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { describeEvent, type CelforgeEvent, type EventSink } from './events.ts';

export interface Notification {
  title: string;
  message: string;
  /** Where clicking should lead: the review page, or the part of it the event is about. */
  url: string | null;
  events: CelforgeEvent[];
}

export interface NotificationChannel {
  readonly name: string;
  send(notification: Notification): Promise<void>;
}

export class Notifier implements EventSink {
  readonly #channels: NotificationChannel[];
  readonly #groupMs: number;
  readonly #log: Logger;
  #url: string | null = null;
  #pending: CelforgeEvent[] = [];
  #timer: NodeJS.Timeout | null = null;
  #sending: Promise<void> = Promise.resolve();

  constructor(channels: NotificationChannel[], options: { groupSeconds: number; log: Logger }) {
    this.#channels = channels;
    this.#groupMs = options.groupSeconds * 1000;
    this.#log = options.log;
  }

  set reviewUrl(url: string | null) {
    this.#url = url;
  }

  emit(event: CelforgeEvent): void {
    if (this.#channels.length === 0) return;
    this.#pending.push(event);
    this.#timer ??= setTimeout(() => void this.flush(), this.#groupMs);
  }

  /** Sends what is pending now; resolves once every channel has answered. */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const events = this.#pending.splice(0);
    if (events.length) this.#sending = this.#sending.then(() => this.#send(events));
    await this.#sending;
  }

  async #send(events: CelforgeEvent[]): Promise<void> {
    const described = events.map(describeEvent);
    const notification: Notification = events.length === 1
      ? { ...described[0]!, url: eventUrl(this.#url, events[0]!), events }
      : { title: `celforge: ${events.length} events`, message: described.map((d) => `${d.title}: ${d.message}`).join('\n'), url: this.#url, events };
    await Promise.all(this.#channels.map(async (channel) => {
      try {
        await channel.send(notification);
      } catch (error) {
        this.#log.warn({ channel: channel.name }, `notification not sent by ${channel.name}: ${errorMessage(error)}`);
      }
    }));
  }
}

/** A reviewed checkpoint opens its comparison (`#compare/<version>`); every other event the page itself. */
function eventUrl(pageUrl: string | null, event: CelforgeEvent): string | null {
  if (pageUrl === null || event.kind !== 'checkpoint-reviewed') return pageUrl;
  const url = new URL(pageUrl);
  url.hash = `compare/${encodeURIComponent(event.version)}`;
  return url.href;
}
