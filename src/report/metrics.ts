/**
 * Report metrics from counted attempts, one per person (docs/METRICS.md). Pure: the rows, the
 * goal and `now` in, numbers out. Both report paths (progress rows, stored events) end here.
 */
import { closesAt, previousRequired, requiredCount, withinBuckets } from '../funnel/attempt-facts';
import type { Goal, StepDefinition } from '../funnel/definition';

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

/** True while the person can still reach a later required step at `now` (docs: in progress). */
function isOpen(goal: Goal, row: CountedAttempt, now: number): boolean {
  const end = closesAt(goal, row.times, row.reached);
  return end !== null && now < end;
}

/** The per-step value sums, orders with the same key summed once (the earliest). */
function stepValues(rows: readonly CountedAttempt[], k: number): number | null {
  const seen = new Map<string, { ts: number; id: string; value: number }>();
  let sum = 0;
  let found = false;
  for (const row of rows) {
    const v = row.values?.[k];
    const ts = row.times[k];
    if (!v || ts === null || ts === undefined) continue;
    found = true;
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
  return found ? Math.round(sum * 1e6) / 1e6 : null;
}

/**
 * What a summary is computed from: counts and in-progress counts per step, time statistics,
 * values and completion-within. The per-person path tallies counted attempts (`tallyRows`), the
 * rollup path sums rollups (src/report/rollup-report.ts); `summaryOf` is shared.
 */
export interface FunnelTally {
  entered: number;
  /** Per step: people whose counted attempt reached it. */
  counts: number[];
  /** Per step: people in progress who have not reached it (0 for step 1). */
  openSinceFirst: number[];
  /** Per step: of those, the ones at the previous required step (0 for step 1). */
  inProgress: number[];
  /** People in progress. */
  open: number;
  /** Per step: time from the step before (empty for step 1). */
  times: TimeStats[];
  /** Per step: the value sum, or null (no value property, or no value at the step). */
  values: Array<number | null>;
  /** Per `withinBuckets(W)` bucket. */
  within: Array<{ done: number; eligible: number }>;
}

/** Tallies counted attempts, one per person, at `now`. */
export function tallyRows(goal: Goal, rows: readonly CountedAttempt[], now: number): FunnelTally {
  const steps = goal.steps;
  const open = rows.map((row) => isOpen(goal, row, now));
  const lastRequired = requiredCount(steps) - 1;
  const tally: FunnelTally = {
    entered: rows.length,
    counts: steps.map(
      (_, k) => rows.filter((r) => r.times[k] !== null && r.times[k] !== undefined).length,
    ),
    openSinceFirst: [],
    inProgress: [],
    open: open.filter(Boolean).length,
    times: [],
    values: steps.map((_, k) => (goal.value ? stepValues(rows, k) : null)),
    within: [],
  };
  steps.forEach((_, k) => {
    const prev = previousRequired(steps, k);
    // People still able to reach step k: in progress, their furthest required step before k.
    const stillOpen = (r: CountedAttempt, i: number) =>
      open[i] && r.times[k] == null && r.reached - 1 < k;
    tally.openSinceFirst.push(k === 0 ? 0 : rows.filter(stillOpen).length);
    // Of those, the ones at the previous required step: on their way from it to step k.
    tally.inProgress.push(
      k === 0 ? 0 : rows.filter((r, i) => stillOpen(r, i) && r.times[prev] != null).length,
    );
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
    tally.times.push(timeStats(durations));
  });
  tally.within = withinBuckets(goal.windowMs).map(({ ms }) => {
    const done = rows.filter((r) => {
      const end = r.times[lastRequired];
      return end != null && end - (r.times[0] as number) <= ms;
    }).length;
    const eligible = rows.filter((r) => {
      const end = r.times[lastRequired];
      const t1 = r.times[0] as number;
      return t1 + ms <= now || (end != null && end - t1 <= ms);
    }).length;
    return { done, eligible };
  });
  return tally;
}

/** The full metric set from a tally. */
export function summaryOf(goal: Goal, tally: FunnelTally): FunnelSummary {
  const steps = goal.steps;
  const { counts, entered } = tally;
  const lastRequired = requiredCount(steps) - 1;

  const summaries = steps.map((step, k): StepSummary => {
    const count = counts[k] ?? 0;
    const label = stepLabel(step);
    const prev = previousRequired(steps, k);
    const openSinceFirst = tally.openSinceFirst[k] ?? 0;
    const inProgress = tally.inProgress[k] ?? 0;
    const previous = prev < 0 ? count : (counts[prev] ?? 0);
    const dropOff = k === 0 ? 0 : previous - count - inProgress;
    const stats = k === 0 ? timeStats([]) : (tally.times[k] ?? timeStats([]));
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
      secondsFromPrevious: stats,
      value: goal.value ? (tally.values[k] ?? null) : null,
    };
  });

  const completed = counts[lastRequired] ?? 0;
  const completionWithin = withinBuckets(goal.windowMs).map(({ label }, i) => {
    const { done, eligible } = tally.within[i] ?? { done: 0, eligible: 0 };
    return { within: label, completed: done, eligible, rate: ratio(done, eligible) };
  });
  return {
    entered,
    completed,
    inProgress: tally.open,
    completionRate: ratio(completed, entered - tally.open),
    completionWithin,
    steps: summaries,
  };
}

/** The full metric set over counted attempts. */
export function summarize(goal: Goal, rows: readonly CountedAttempt[], now: number): FunnelSummary {
  return summaryOf(goal, tallyRows(goal, rows, now));
}

export { withinBuckets };
