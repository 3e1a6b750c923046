/**
 * Notification channels: the desktop (node-notifier: notify-send on Linux,
 * Notification Center on macOS, toasts on Windows), ntfy (a POST to the
 * topic with Title, Tags and Click headers) and a generic webhook (a JSON
 * POST, optionally signed with HMAC-SHA256). Secrets go in headers only and
 * never into logs or error messages. An ntfy message longer than ntfy's size
 * limit is shortened in the middle, so that it stays a message.
 */
import { createHmac } from 'node:crypto';
import notifier from 'node-notifier';
import type { Logger } from '../log.ts';
import { fitUtf8Bytes } from '../notify/fit-bytes.ts';
import type { Notification, NotificationChannel } from '../notify/notifier.ts';

/**
 * ntfy's default message size limit, DefaultMessageSizeLimit = 4096 bytes
 * (server/config.go line 38 at binwiederhier/ntfy 81a486ad; docs/publish.md:
 * "Each message can be up to 4,096 bytes long. Longer messages are treated as
 * attachments"). The server peeks that many bytes and counts a body that
 * fills them as over the limit (util/peek.go line 35, `LimitReached: read ==
 * limit`), so the body must stay one byte under it. Over the limit, ntfy.sh
 * turns the message into an attachment and a server without attachments
 * refuses it with 400 "attachments not allowed" (server/server.go lines 1073-1075, 1146-1148).
 */
export const NTFY_MESSAGE_LIMIT_BYTES = 4096;

/** Where a desktop session can show a notification; on Linux that needs a session bus (or a display). */
export function desktopSessionAvailable(env: NodeJS.ProcessEnv = process.env, platform = process.platform): boolean {
  if (platform === 'darwin' || platform === 'win32') return true;
  return Boolean(env.DBUS_SESSION_BUS_ADDRESS || env.DISPLAY || env.WAYLAND_DISPLAY);
}

export function desktopChannel(log: Logger): NotificationChannel | null {
  if (!desktopSessionAvailable()) {
    log.info('desktop notifications skipped: no desktop session here (no D-Bus session bus or display); ntfy and webhooks still work');
    return null;
  }
  return {
    name: 'desktop',
    send: (notification) => new Promise((resolve, reject) => {
      // `open` is followed where the platform allows a click to open something (macOS); elsewhere the URL is in the text.
      const options = {
        title: notification.title, message: notification.url ? `${notification.message}\n${notification.url}` : notification.message,
        open: notification.url ?? undefined, appName: 'celforge', wait: false,
      };
      notifier.notify(options as Parameters<typeof notifier.notify>[0], (error) => (error ? reject(new Error(`desktop notification failed: ${error.message}`)) : resolve()));
    }),
  };
}

export function ntfyChannel(options: { url: string; topic: string; token?: string }): NotificationChannel {
  return {
    name: 'ntfy',
    async send(notification) {
      const headers: Record<string, string> = { Title: asciiHeader(notification.title), Tags: notification.events.map((event) => event.kind).join(',') };
      if (notification.url) headers.Click = notification.url;
      if (options.token) headers.Authorization = `Bearer ${options.token}`;
      const body = fitUtf8Bytes(notification.message, NTFY_MESSAGE_LIMIT_BYTES - 1);
      const response = await fetch(`${options.url.replace(/\/$/, '')}/${options.topic}`, { method: 'POST', headers, body });
      if (!response.ok) throw new Error(`${options.url}: ntfy answered ${response.status} ${response.statusText}`);
    },
  };
}

export function webhookChannel(options: { url: string; secret?: string }): NotificationChannel {
  return {
    name: 'webhook',
    async send(notification) {
      const body = JSON.stringify({ title: notification.title, message: notification.message, url: notification.url, events: notification.events, at: new Date().toISOString() });
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (options.secret) headers['X-Celforge-Signature'] = `sha256=${createHmac('sha256', options.secret).update(body).digest('hex')}`;
      const response = await fetch(options.url, { method: 'POST', headers, body });
      if (!response.ok) throw new Error(`${new URL(options.url).origin}: the webhook answered ${response.status} ${response.statusText}`);
    },
  };
}

/** HTTP headers carry Latin-1; ntfy reads RFC 2047 encoded words for the rest. */
function asciiHeader(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : `=?UTF-8?B?${Buffer.from(text).toString('base64')}?=`;
}
