/**
 * Hourly series and their seasonal baseline: zero-filled buckets, the judged bucket for a
 * scheduled time, the expected count of an hour, and the window a low-volume step is judged on.
 */
import { HOUR_MS } from '../lib/units';
import type { AlertConfig } from './config';
import { median } from './stats';

export { HOUR_MS };
export const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;

/** Window lengths tried, shortest first, until the expected count is enough to judge. */
export const WINDOW_HOURS = [1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 168] as const;

/**
 * Counts by hour start (epoch ms); an hour absent counted zero events. Only read by hour, so a
 * series may be a view computed on read (the rest of the site: its total less one step).
 */
export type HourlySeries = Pick<ReadonlyMap<number, number>, 'get'>;

/** The end of the newest bucket that is complete plus the grace period at `now`. */
export function judgedBucketEnd(now: number, graceMinutes: number): number {
  return Math.floor((now - graceMinutes * 60_000) / HOUR_MS) * HOUR_MS;
}

/**
 * The count of an hour with missing buckets read as zero: a step that stops sends no rows, and
 * "no row" must count as 0, not as "nothing to judge" (C30).
 */
export function countAt(series: HourlySeries | undefined, hour: number): number {
  return series?.get(hour) ?? 0;
}

/** Sum over the hours [end − hours, end). */
export function sumWindow(series: HourlySeries | undefined, end: number, hours: number): number {
  let total = 0;
  for (let h = end - hours * HOUR_MS; h < end; h += HOUR_MS) total += countAt(series, h);
  return total;
}

export interface HourBaseline {
  expected: number;
  /** `weekly`: same hour of week over previous weeks; `daily`: same hour over recent days. */
  basis: 'weekly' | 'daily';
  samples: number[];
}

/**
 * The expected count of one hour: the median of the same hour of week over the previous weeks
 * that history covers, or, with fewer than `minWeeks` of them, the median of the same hour over
 * the previous days. Null while history is shorter than `minDays` (the series is learning).
 */
export function expectedAt(
  series: HourlySeries | undefined,
  hour: number,
  historyStart: number,
  config: Pick<AlertConfig, 'baselineWeeks' | 'minWeeks' | 'fallbackDays' | 'minDays'>,
): HourBaseline | null {
  const weekly: number[] = [];
  for (let i = 1; i <= config.baselineWeeks; i += 1) {
    const past = hour - i * WEEK_MS;
    if (past >= historyStart) weekly.push(countAt(series, past));
  }
  if (weekly.length >= config.minWeeks) {
    return { expected: median(weekly), basis: 'weekly', samples: weekly };
  }
  const daily: number[] = [];
  for (let i = 1; i <= config.fallbackDays; i += 1) {
    const past = hour - i * DAY_MS;
    if (past >= historyStart) daily.push(countAt(series, past));
  }
  if (daily.length >= config.minDays) {
    return { expected: median(daily), basis: 'daily', samples: daily };
  }
  return null;
}

/** Expected total over [end − hours, end), or null when any hour is still learning. */
export function expectedWindow(
  series: HourlySeries | undefined,
  end: number,
  hours: number,
  historyStart: number,
  config: AlertConfig,
): { expected: number; basis: HourBaseline['basis'] } | null {
  let expected = 0;
  let basis: HourBaseline['basis'] = 'weekly';
  for (let h = end - hours * HOUR_MS; h < end; h += HOUR_MS) {
    const baseline = expectedAt(series, h, historyStart, config);
    if (!baseline) return null;
    expected += baseline.expected;
    if (baseline.basis === 'daily') basis = 'daily';
  }
  return { expected, basis };
}

export type WindowChoice =
  | { status: 'ok'; hours: number; observed: number; expected: number; basis: 'weekly' | 'daily' }
  | { status: 'learning' }
  | { status: 'too_quiet'; hours: number; expected: number };

/**
 * The shortest window ending at `end` whose expected count reaches `minExpected`: a busy step
 * is judged hour by hour, a quiet one over several hours (its detection delay grows with it).
 * Quiet nights and weekends are never judged on a handful of events.
 */
export function chooseWindow(
  series: HourlySeries | undefined,
  end: number,
  historyStart: number,
  config: AlertConfig,
  minExpected = config.minExpected,
): WindowChoice {
  let last: WindowChoice = { status: 'learning' };
  for (const hours of WINDOW_HOURS) {
    if (hours > config.maxWindowHours) break;
    const window = expectedWindow(series, end, hours, historyStart, config);
    if (!window) return last.status === 'too_quiet' ? last : { status: 'learning' };
    if (window.expected >= minExpected) {
      const observed = sumWindow(series, end, hours);
      return { status: 'ok', hours, observed, expected: window.expected, basis: window.basis };
    }
    last = { status: 'too_quiet', hours, expected: window.expected };
  }
  return last;
}
