/** The channels the configuration asks for. */
import { desktopChannel, ntfyChannel, webhookChannel } from '../adapters/notify-channels.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { Notifier, type NotificationChannel } from './notifier.ts';

export function notifierFor(config: Config, log: Logger): Notifier {
  const channels: NotificationChannel[] = [];
  if (config.notify.desktop) {
    const desktop = desktopChannel(log);
    if (desktop) channels.push(desktop);
  }
  if (config.notify.ntfy) channels.push(ntfyChannel(config.notify.ntfy));
  if (config.notify.webhook) channels.push(webhookChannel(config.notify.webhook));
  return new Notifier(channels, { groupSeconds: config.notify.groupSeconds, log });
}
