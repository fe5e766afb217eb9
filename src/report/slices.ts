/**
 * Conversion over time and breakdowns by segment at entry (docs/METRICS.md). Pure.
 */
import type { Goal } from '../funnel/definition';
import { summarize, type CountedAttempt, type FunnelSummary } from './metrics';

export type Interval = 'day' | 'week';

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The local calendar date of an instant in an IANA zone, as `YYYY-MM-DD`. */
export function localDate(ms: number, tz: string): string {
  let format = formatters.get(tz);
  if (!format) {
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone: tz,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    formatters.set(tz, format);
  }
  return format.format(new Date(ms));
}

/** The bucket label of an entry: its local date, or the Monday of its local week. */
export function bucketOf(ms: number, tz: string, interval: Interval): string {
  const day = localDate(ms, tz);
  if (interval === 'day') return day;
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  const utc = Date.UTC(y, m - 1, d);
  const monday = utc - ((new Date(utc).getUTCDay() + 6) % 7) * 86_400_000;
  return new Date(monday).toISOString().slice(0, 10);
}

/** Entries and completions per bucket of entry time, oldest first. */
export function overTime(
  goal: Goal,
  rows: readonly CountedAttempt[],
  tz: string,
  interval: Interval,
): Array<{ bucket: string; entered: number; completed: number }> {
  let last = 0;
  goal.steps.forEach((s, k) => {
    if (!s.optional) last = k;
  });
  const buckets = new Map<string, { entered: number; completed: number }>();
  for (const row of rows) {
    const key = bucketOf(row.times[0] as number, tz, interval);
    const bucket = buckets.get(key) ?? { entered: 0, completed: 0 };
    bucket.entered += 1;
    if (row.times[last] != null) bucket.completed += 1;
    buckets.set(key, bucket);
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([bucket, v]) => ({ bucket, ...v }));
}

/**
 * What a breakdown group holds: one tracked value, the people without a value (`none`), or every
 * value past the top N (`other`). The last two carry `value: null`, so a tracked value spelled
 * "other" or "(none)" is always a group of its own.
 */
export type GroupKind = 'value' | 'none' | 'other';

export type BreakdownGroup = { value: string | null; kind: GroupKind } & FunnelSummary;

/**
 * The top `top` groups by entrants (the no-value group among them), ties by value with the
 * no-value group last; the rest as `other`, each fully summarised.
 */
export function breakdown(
  goal: Goal,
  rows: readonly CountedAttempt[],
  key: string,
  top: number,
  now: number,
): BreakdownGroup[] {
  const groups = new Map<string | null, CountedAttempt[]>();
  for (const row of rows) {
    const value = row.segment[key] ?? null;
    const list = groups.get(value) ?? [];
    list.push(row);
    groups.set(value, list);
  }
  const ranked = [...groups.entries()].sort(
    ([a, ra], [b, rb]) => rb.length - ra.length || compareValues(a, b),
  );
  const shown = ranked.slice(0, top);
  const rest = ranked.slice(top).flatMap(([, list]) => list);
  const result: BreakdownGroup[] = shown.map(([value, list]) => ({
    value,
    kind: value === null ? 'none' : 'value',
    ...summarize(goal, list, now),
  }));
  if (rest.length > 0) result.push({ value: null, kind: 'other', ...summarize(goal, rest, now) });
  return result;
}

/** Values by code unit order, no value after every value. */
function compareValues(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}
