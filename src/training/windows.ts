/**
 * Training windows: each opens at the times a cron expression names (in the
 * configured time zone) and lasts so many hours. Whether "now" is inside one
 * needs the last opening before now, which node-cron cannot tell, so the
 * arithmetic uses cron-parser; the daemon uses node-cron to wake at openings.
 */
import { CronExpressionParser } from 'cron-parser';

export interface WindowSpec {
  start: string;
  hours: number;
}

export interface OpenWindow {
  start: Date;
  end: Date;
}

/** The window open at `now` that lasts longest, or null. */
export function openWindow(windows: readonly WindowSpec[], now: Date, timezone?: string): OpenWindow | null {
  let best: OpenWindow | null = null;
  for (const window of windows) {
    // One millisecond on, so that a window opening exactly now counts as open.
    const start = CronExpressionParser.parse(window.start, { currentDate: new Date(now.getTime() + 1), tz: timezone }).prev().toDate();
    const end = new Date(start.getTime() + window.hours * 3_600_000);
    if (end > now && (!best || end > best.end)) best = { start, end };
  }
  return best;
}

export function nextWindowStart(windows: readonly WindowSpec[], now: Date, timezone?: string): Date | null {
  const starts = windows.map((window) => CronExpressionParser.parse(window.start, { currentDate: now, tz: timezone }).next().toDate());
  return starts.length ? new Date(Math.min(...starts.map((date) => date.getTime()))) : null;
}
