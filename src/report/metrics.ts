/**
 * Report metrics from counted attempts, one per person (docs/METRICS.md). Pure: the rows, the
 * goal and `now` in, numbers out. Both report paths (progress rows, stored events) end here.
 */
import type { Goal, StepDefinition } from '../funnel/definition';
import { parseWindow } from '../funnel/definition';

/** One person's counted attempt, as either report path hands it over. */
export interface CountedAttempt {
  /** The person's key, where the path knows it (admin people lists). */
  personId?: string;
  /** Step times in epoch ms (null where not reached); `times[0]` is the entry. */
  times: Array<number | null>;
  /** 1-based furthest required step. */
  reached: number;
  /** Breakdown attributes at entry, by breakdown key. */
  segment: Record<string, string | null>;
  /** Per step `[value, orderKey, messageId]` of the value property, or null. */
  values: Array<[number, string | null, string] | null> | null;
}

export interface TimeStats {
  median: number | null;
  p90: number | null;
  mean: number | null;
  min: number | null;
  max: number | null;
}

export interface StepSummary {
  index: number;
  name: string;
  event: string;
  optional: boolean;
  count: number;
  /** People in progress at the previous required step: left out of this step's denominators. */
  inProgress: number;
  conversionFromPrevious: number | null;
  conversionFromFirst: number | null;
  dropOff: number;
  dropOffRate: number | null;
  medianSecondsFromPrevious: number | null;
  secondsFromPrevious: TimeStats;
  value: number | null;
}

export interface FunnelSummary {
  entered: number;
  completed: number;
  inProgress: number;
  completionRate: number | null;
  completionWithin: Array<{
    within: string;
    completed: number;
    eligible: number;
    rate: number | null;
  }>;
  steps: StepSummary[];
}

/**
 * `numerator / denominator` rounded half away from zero to 4 decimals, computed on integers so
 * no float error can tip a half; `0/0` (any `x/0`) is null.
 */
export function ratio(numerator: number, denominator: number): number | null {
  if (denominator === 0) return null;
  const scaled = Math.floor((2 * numerator * 10_000 + denominator) / (2 * denominator));
  return scaled / 10_000;
}

/** Milliseconds as seconds with 3 decimals (whole milliseconds, half away from zero). */
export const medianSeconds = (ms: number | null) => (ms === null ? null : Math.round(ms) / 1000);

/** Linear-interpolation quantile of sorted values (DuckDB's `quantile_cont`). */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const h = (sorted.length - 1) * q;
  const low = Math.floor(h);
  const lowValue = sorted[low] as number;
  if (low + 1 >= sorted.length) return lowValue;
  return lowValue + (h - low) * ((sorted[low + 1] as number) - lowValue);
}

/** Median, p90, mean, min and max of millisecond durations, in seconds. */
export function timeStats(durationsMs: readonly number[]): TimeStats {
  const sorted = [...durationsMs].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    median: medianSeconds(quantile(sorted, 0.5)),
    p90: medianSeconds(quantile(sorted, 0.9)),
    mean: medianSeconds(sorted.length === 0 ? null : sum / sorted.length),
    min: medianSeconds(sorted[0] ?? null),
    max: medianSeconds(sorted[sorted.length - 1] ?? null),
  };
}

/** The label a step shows: its name, else what it matches. */
export function stepLabel(step: StepDefinition): { name: string; event: string } {
  const matched =
    step.event ??
    step.path ??
    step.url ??
    (step.anyOf ? step.anyOf.map((m) => m.event ?? m.path ?? m.url).join(' | ') : undefined) ??
    (step.trait ? `${step.trait.property} ${step.trait.op} ${String(step.trait.value ?? '')}` : '');
  return { name: step.name ?? matched, event: matched };
}

const DAY_MS = 86_400_000;

/** Index of the required step before k (k itself excluded), or -1. */
function previousRequired(steps: readonly StepDefinition[], k: number): number {
  for (let j = k - 1; j >= 0; j -= 1) if (!steps[j]?.optional) return j;
  return -1;
}

/** True while the person can still reach a later required step at `now` (docs: in progress). */
function isOpen(goal: Goal, row: CountedAttempt, now: number): boolean {
  const t1 = row.times[0] as number;
  if (row.reached >= requiredCount(goal.steps)) return false;
  if (!(now < t1 + goal.windowMs)) return false;
  const nextIndex = goal.steps.findIndex((s, k) => !s.optional && k >= row.reached);
  const next = goal.steps[nextIndex];
  if (next?.window && goal.mode !== 'any') {
    const anchor = row.times[previousRequired(goal.steps, nextIndex)] ?? t1;
    if (!(now < anchor + parseWindow(next.window))) return false;
  }
  return true;
}

function requiredCount(steps: readonly StepDefinition[]): number {
  let last = 0;
  steps.forEach((s, k) => {
    if (!s.optional) last = k + 1;
  });
  return last;
}

/** The per-step value sums, orders with the same key summed once (the earliest). */
function stepValues(rows: readonly CountedAttempt[], k: number): number | null {
  const seen = new Map<string, { ts: number; id: string; value: number }>();
  let sum = 0;
  let any = false;
  for (const row of rows) {
    const v = row.values?.[k];
    const ts = row.times[k];
    if (!v || ts === null || ts === undefined) continue;
    any = true;
    const [value, order, id] = v;
    if (order === null) {
      sum += value;
      continue;
    }
    const held = seen.get(order);
    if (!held || ts < held.ts || (ts === held.ts && id < held.id))
      seen.set(order, { ts, id, value });
  }
  for (const { value } of seen.values()) sum += value;
  return any ? Math.round(sum * 1e6) / 1e6 : null;
}

/** The full metric set over counted attempts. */
export function summarize(goal: Goal, rows: readonly CountedAttempt[], now: number): FunnelSummary {
  const steps = goal.steps;
  const open = rows.map((row) => isOpen(goal, row, now));
  const entered = rows.length;
  const counts = steps.map(
    (_, k) => rows.filter((r) => r.times[k] !== null && r.times[k] !== undefined).length,
  );
  const lastRequired = requiredCount(steps) - 1;

  const summaries = steps.map((step, k): StepSummary => {
    const count = counts[k] ?? 0;
    const label = stepLabel(step);
    const prev = previousRequired(steps, k);
    // People still able to reach step k: in progress, their furthest required step before k.
    const stillOpen = (r: CountedAttempt, i: number) =>
      open[i] && r.times[k] == null && r.reached - 1 < k;
    const openSinceFirst = k === 0 ? 0 : rows.filter(stillOpen).length;
    // Of those, the ones at the previous required step: on their way from it to step k.
    const inProgress =
      k === 0 ? 0 : rows.filter((r, i) => stillOpen(r, i) && r.times[prev] != null).length;
    const previous = prev < 0 ? count : (counts[prev] ?? 0);
    const dropOff = k === 0 ? 0 : previous - count - inProgress;
    const durations: number[] = [];
    if (k > 0) {
      for (const r of rows) {
        const t = r.times[k];
        if (t === null || t === undefined) continue;
        let before: number | null = null;
        for (let j = k - 1; j >= 0 && before === null; j -= 1) before = r.times[j] ?? null;
        if (before !== null) durations.push(t - before);
      }
    }
    const stats = timeStats(durations);
    return {
      index: k + 1,
      name: label.name,
      event: label.event,
      optional: step.optional === true,
      count,
      inProgress,
      conversionFromPrevious:
        k === 0 ? (count === 0 ? null : 1) : ratio(count, previous - inProgress),
      conversionFromFirst: ratio(count, entered - openSinceFirst),
      dropOff,
      dropOffRate: k === 0 ? (count === 0 ? null : 0) : ratio(dropOff, previous - inProgress),
      medianSecondsFromPrevious: k === 0 ? null : stats.median,
      secondsFromPrevious: k === 0 ? timeStats([]) : stats,
      value: goal.value ? stepValues(rows, k) : null,
    };
  });

  const completedRows = rows.filter((r) => r.times[lastRequired] != null);
  const openCount = open.filter(Boolean).length;
  const completionWithin = withinBuckets(goal.windowMs).map(({ label, ms }) => {
    const done = rows.filter((r) => {
      const end = r.times[lastRequired];
      return end != null && end - (r.times[0] as number) <= ms;
    }).length;
    const eligible = rows.filter((r) => {
      const end = r.times[lastRequired];
      const t1 = r.times[0] as number;
      return t1 + ms <= now || (end != null && end - t1 <= ms);
    }).length;
    return { within: label, completed: done, eligible, rate: ratio(done, eligible) };
  });
  return {
    entered,
    completed: completedRows.length,
    inProgress: openCount,
    completionRate: ratio(completedRows.length, entered - openCount),
    completionWithin,
    steps: summaries,
  };
}

/** 1, 7, 14 and 30 days, capped at the window (listed itself when shorter than 30 days). */
export function withinBuckets(windowMs: number): Array<{ label: string; ms: number }> {
  const buckets = [1, 7, 14, 30]
    .filter((d) => d * DAY_MS < Math.min(windowMs, 30 * DAY_MS))
    .map((d) => ({ label: `${d}d`, ms: d * DAY_MS }));
  const cap = Math.min(windowMs, 30 * DAY_MS);
  const label =
    cap % DAY_MS === 0
      ? `${cap / DAY_MS}d`
      : cap % 3_600_000 === 0
        ? `${cap / 3_600_000}h`
        : `${cap / 60_000}m`;
  buckets.push({ label, ms: cap });
  return buckets;
}
