/** Quiet and maintenance windows in the site's time zone, pure. */
import type { AlertConfig } from './config';

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function localClock(at: number, timeZone: string): { day: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '0';
  return {
    day: WEEKDAYS.indexOf(part('weekday')),
    minute: Number(part('hour')) * 60 + Number(part('minute')),
  };
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * When `at` falls in a quiet window, the instant it ends (to the minute; a DST change inside a
 * window shifts its end by that hour); otherwise null. A window may cross midnight (22:00 to
 * 07:00); its `days` name the day it starts on.
 */
export function quietUntil(config: Pick<AlertConfig, 'quietWindows' | 'timeZone'>, at: number) {
  const { day, minute } = localClock(at, config.timeZone);
  let until: number | null = null;
  for (const window of config.quietWindows) {
    const start = minutesOf(window.start);
    const end = minutesOf(window.end);
    const days = window.days ?? [0, 1, 2, 3, 4, 5, 6];
    const crosses = end <= start;
    let inside = false;
    if (!crosses) inside = days.includes(day) && minute >= start && minute < end;
    else if (minute >= start) inside = days.includes(day);
    else if (minute < end) inside = days.includes((day + 6) % 7);
    if (!inside) continue;
    const left = (end - minute + 1440) % 1440 || 1440;
    const candidate = Math.floor(at / 60_000) * 60_000 + left * 60_000;
    until = Math.max(until ?? 0, candidate);
  }
  return until;
}

/** True when [from, to) overlaps a maintenance window: such buckets are not judged. */
export function inMaintenance(
  config: Pick<AlertConfig, 'maintenance'>,
  from: number,
  to: number,
): boolean {
  return config.maintenance.some((m) => Date.parse(m.from) < to && Date.parse(m.to) > from);
}
