/**
 * Facts about one person's attempts that depend only on the goal version and the person's own
 * attempts, stored on each `attempts` row so that reports can count from rollups (docs/METRICS.md,
 * "Rollups"). Pure: attempts and the goal in, facts out.
 */
import { HOUR_MS } from '../lib/units';
import { parseWindow, type Goal, type StepDefinition } from './definition';

export { HOUR_MS };
const DAY_MS = 86_400_000;

/** 1-based index of the last required step (every goal ends with one). */
export function requiredCount(steps: readonly StepDefinition[]): number {
  let last = 0;
  steps.forEach((s, k) => {
    if (!s.optional) last = k + 1;
  });
  return last;
}

/** Index of the required step before k (k itself excluded), or -1. */
export function previousRequired(steps: readonly StepDefinition[], k: number): number {
  for (let j = k - 1; j >= 0; j -= 1) if (!steps[j]?.optional) return j;
  return -1;
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
      : cap % HOUR_MS === 0
        ? `${cap / HOUR_MS}h`
        : `${cap / 60_000}m`;
  buckets.push({ label, ms: cap });
  return buckets;
}

/**
 * The instant at which an attempt stops being in progress (it is in progress while
 * `now < closesAt`), or null when it never is: it reached the last required step. The window
 * runs from the entry; a step window on the next unreached required step runs from the previous
 * required step's time (not in any-order mode).
 */
export function closesAt(
  goal: Pick<Goal, 'steps' | 'windowMs' | 'mode'>,
  times: ReadonlyArray<number | null>,
  reached: number,
): number | null {
  if (reached >= requiredCount(goal.steps)) return null;
  const t1 = times[0] as number;
  let end = t1 + goal.windowMs;
  const nextIndex = goal.steps.findIndex((s, k) => !s.optional && k >= reached);
  const next = goal.steps[nextIndex];
  if (next?.window && goal.mode !== 'any') {
    const anchor = times[previousRequired(goal.steps, nextIndex)] ?? t1;
    end = Math.min(end, anchor + parseWindow(next.window));
  }
  return end;
}

/**
 * Time-between-steps histograms use log buckets of ratio `DURATION_BASE`: bucket b holds
 * durations in `[g^b, g^(b+1))` ms and stands for `2·lo·hi / (lo + hi)`, so every duration it
 * holds is within `(g - 1) / (g + 1)` (under 1 %) of it; bucket -1 holds exactly 0 ms.
 */
export const DURATION_BASE = 1.02;
export const DURATION_RELATIVE_ERROR = (DURATION_BASE - 1) / (DURATION_BASE + 1);
const LOG_BASE = Math.log(DURATION_BASE);

/** The histogram bucket of a duration in ms. */
export function durationBucket(ms: number): number {
  if (ms <= 0) return -1;
  let b = Math.floor(Math.log(ms) / LOG_BASE);
  // Float log can land one bucket off at an exact power; the bounds below are the definition.
  if (DURATION_BASE ** b > ms) b -= 1;
  else if (DURATION_BASE ** (b + 1) <= ms) b += 1;
  return b;
}

/** The duration in ms a histogram bucket stands for. */
export function bucketValue(bucket: number): number {
  if (bucket < 0) return 0;
  const lo = DURATION_BASE ** bucket;
  const hi = lo * DURATION_BASE;
  return (2 * lo * hi) / (lo + hi);
}

/** The facts stored beside an attempt's step times. */
export interface AttemptFacts {
  /** Latest entry of an earlier attempt of the person that reached at least as far, or null. */
  prevGe: number | null;
  /** Earliest entry of a later attempt of the person that reached further, or null. */
  nextGt: number | null;
  closesAt: number | null;
  /** Bit k: step k (0-based) not reached and not passed by the furthest required step. */
  openMask: number;
  /** Bit k: as `openMask`, and the required step before k was reached (on its way to k). */
  progressMask: number;
  /** Bit i: completed within the i-th of `withinBuckets(W)`. */
  doneMask: number;
  /** Per step k ≥ 1 (at k - 1): log bucket of the time from the step before, or null. */
  durationBuckets: Array<number | null>;
}

interface AttemptTimes {
  times: ReadonlyArray<number | null>;
  reached: number;
}

/**
 * The facts of every attempt of one person on one goal version, in the order given. An attempt
 * is the person's counted one for an entry range `[from, to)` exactly when its entry is in the
 * range, `prevGe < from` and `nextGt >= to` (null meaning never): no attempt in range reached
 * further, and none earlier in range reached as far.
 */
export function attemptFacts(
  goal: Pick<Goal, 'steps' | 'windowMs' | 'mode'>,
  attempts: readonly AttemptTimes[],
): AttemptFacts[] {
  const order = attempts
    .map((a, i) => ({ t1: a.times[0] as number, reached: a.reached, i }))
    .sort((a, b) => a.t1 - b.t1);
  const prevGe: Array<number | null> = Array.from({ length: attempts.length }, () => null);
  const nextGt: Array<number | null> = Array.from({ length: attempts.length }, () => null);
  // Reached is at most 10: keep the latest (earliest) entry per reached value while scanning.
  const latest = new Map<number, number>();
  for (const a of order) {
    let found: number | null = null;
    for (const [reached, t1] of latest) {
      if (reached >= a.reached && (found === null || t1 > found)) found = t1;
    }
    prevGe[a.i] = found;
    latest.set(a.reached, a.t1);
  }
  const earliest = new Map<number, number>();
  for (let j = order.length - 1; j >= 0; j -= 1) {
    const a = order[j] as (typeof order)[number];
    let found: number | null = null;
    for (const [reached, t1] of earliest) {
      if (reached > a.reached && (found === null || t1 < found)) found = t1;
    }
    nextGt[a.i] = found;
    earliest.set(a.reached, a.t1);
  }

  const steps = goal.steps;
  const last = requiredCount(steps) - 1;
  const within = withinBuckets(goal.windowMs);
  return attempts.map((a, i) => {
    const t = a.times;
    let openMask = 0;
    let progressMask = 0;
    for (let k = 1; k < steps.length; k += 1) {
      if (t[k] == null && a.reached - 1 < k) {
        openMask |= 1 << k;
        if (t[previousRequired(steps, k)] != null) progressMask |= 1 << k;
      }
    }
    let doneMask = 0;
    const end = t[last];
    within.forEach(({ ms }, b) => {
      if (end != null && end - (t[0] as number) <= ms) doneMask |= 1 << b;
    });
    const durationBuckets = steps.slice(1).map((_, j) => {
      const k = j + 1;
      const at = t[k];
      if (at == null) return null;
      let before: number | null = null;
      for (let m = k - 1; m >= 0 && before === null; m -= 1) before = t[m] ?? null;
      return before === null ? null : durationBucket(at - before);
    });
    return {
      prevGe: prevGe[i] ?? null,
      nextGt: nextGt[i] ?? null,
      closesAt: closesAt(goal, t, a.reached),
      openMask,
      progressMask,
      doneMask,
      durationBuckets,
    };
  });
}
