/**
 * Summing rollup rows into the tallies the metrics are computed from (docs/METRICS.md,
 * "Rollups"). Pure: sums in, a `FunnelTally` out. Everything here is additive, so breakdown
 * groups and `other` are sums of the same shape.
 */
import { bucketValue, HOUR_MS } from '../funnel/attempt-facts';
import type { Goal } from '../funnel/definition';
import { medianSeconds, type FunnelTally, type TimeStats } from './metrics';
import { bucketOf, type Interval } from './slices';

const STEPS = 10;
const WITHIN = 5;
const zeros = (n: number) => Array.from({ length: n }, () => 0);

/** Sums over the rollup rows of one group (the total, or one breakdown value). */
export interface RollupSums {
  n: number;
  /** Index k - 1 for step k: reached, open before it, on the way to it, ms into it (sum). */
  c: number[];
  o: number[];
  p: number[];
  d: number[];
  /** Value sums in millionths and how many attempts had a value, per step. */
  v: number[];
  vn: number[];
  /** Completed within each bucket. */
  w: number[];
  /** In progress at `now`: attempts, and their `o` and `p`. */
  openN: number;
  openO: number[];
  openP: number[];
  /** Not completed within bucket i, with `t1 + d(i) <= now`. */
  eligibleNotDone: number[];
  /** Per step index k - 1: histogram bucket → attempts. */
  hist: Array<Map<number, number>>;
}

/** An empty group. */
export function emptySums(): RollupSums {
  return {
    n: 0,
    c: zeros(STEPS),
    o: zeros(STEPS),
    p: zeros(STEPS),
    d: zeros(STEPS),
    v: zeros(STEPS),
    vn: zeros(STEPS),
    w: zeros(WITHIN),
    openN: 0,
    openO: zeros(STEPS),
    openP: zeros(STEPS),
    eligibleNotDone: zeros(WITHIN),
    hist: Array.from({ length: STEPS }, () => new Map<number, number>()),
  };
}

/** Adds `b` into `a`, or takes it out (`sign` -1). */
export function addSums(a: RollupSums, b: RollupSums, sign: 1 | -1 = 1): RollupSums {
  a.n += sign * b.n;
  a.openN += sign * b.openN;
  for (const key of ['c', 'o', 'p', 'd', 'v', 'vn', 'w', 'openO', 'openP'] as const) {
    b[key].forEach((x, i) => {
      a[key][i] = (a[key][i] ?? 0) + sign * x;
    });
  }
  b.eligibleNotDone.forEach((x, i) => {
    a.eligibleNotDone[i] = (a.eligibleNotDone[i] ?? 0) + sign * x;
  });
  b.hist.forEach((map, k) => {
    const into = a.hist[k] as Map<number, number>;
    for (const [bucket, count] of map) into.set(bucket, (into.get(bucket) ?? 0) + sign * count);
  });
  return a;
}

/**
 * Median, p90, mean, min and max from a histogram of log buckets and the exact sum. Each
 * duration stands for its bucket's value, so a percentile is within the bucket's relative error
 * of the exact one (an interpolation of two values each within it); the mean is exact.
 */
export function histogramStats(
  hist: ReadonlyMap<number, number>,
  sumMs: number,
  count: number,
): TimeStats {
  const buckets = [...hist.entries()].filter(([, c]) => c > 0).sort(([a], [b]) => a - b);
  if (count === 0 || buckets.length === 0) {
    return { median: null, p90: null, mean: null, min: null, max: null };
  }
  const total = buckets.reduce((s, [, c]) => s + c, 0);
  const at = (rank: number) => {
    let seen = 0;
    for (const [bucket, c] of buckets) {
      seen += c;
      if (rank < seen) return bucketValue(bucket);
    }
    return bucketValue((buckets[buckets.length - 1] as [number, number])[0]);
  };
  const quantile = (q: number) => {
    const h = (total - 1) * q;
    const low = Math.floor(h);
    const lowValue = at(low);
    if (low + 1 >= total) return lowValue;
    return lowValue + (h - low) * (at(low + 1) - lowValue);
  };
  // The mean is exact, and the true min and max lie on either side of it: a bucket's value on
  // the wrong side of the mean is moved to it, which only brings it closer to the true one
  // (four durations of exactly 300 s read min 297.8 s, mean 300 s, max 300 s, not max 297.8 s).
  const mean = sumMs / count;
  return {
    median: medianSeconds(quantile(0.5)),
    p90: medianSeconds(quantile(0.9)),
    mean: medianSeconds(mean),
    min: medianSeconds(Math.min(at(0), mean)),
    max: medianSeconds(Math.max(at(total - 1), mean)),
  };
}

/** The tally of a group, for `summaryOf`. */
export function tallySums(goal: Goal, sums: RollupSums): FunnelTally {
  const steps = goal.steps;
  return {
    entered: sums.n,
    counts: steps.map((_, k) => (k === 0 ? sums.n : (sums.c[k] ?? 0))),
    openSinceFirst: steps.map((_, k) => (k === 0 ? 0 : (sums.openO[k] ?? 0))),
    inProgress: steps.map((_, k) => (k === 0 ? 0 : (sums.openP[k] ?? 0))),
    open: sums.openN,
    times: steps.map((_, k) =>
      k === 0
        ? histogramStats(new Map(), 0, 0)
        : histogramStats(sums.hist[k] as Map<number, number>, sums.d[k] ?? 0, sums.c[k] ?? 0),
    ),
    values: steps.map((_, k) => ((sums.vn[k] ?? 0) > 0 ? (sums.v[k] ?? 0) / 1e6 : null)),
    within: sums.w.map((done, i) => ({
      done,
      eligible: done + (sums.eligibleNotDone[i] ?? 0),
    })),
  };
}

/**
 * Entries and completions per local day or week from hourly sums, or null when an hour holds a
 * local midnight (a zone whose offset is not whole hours then): hours cannot be split.
 */
export function overTimeFromHours(
  hours: ReadonlyArray<{ hour: number; entered: number; completed: number }>,
  tz: string,
  interval: Interval,
): Array<{ bucket: string; entered: number; completed: number }> | null {
  const buckets = new Map<string, { entered: number; completed: number }>();
  for (const { hour, entered, completed } of hours) {
    const key = bucketOf(hour * HOUR_MS, tz, interval);
    if (bucketOf((hour + 1) * HOUR_MS - 1, tz, interval) !== key) return null;
    const bucket = buckets.get(key) ?? { entered: 0, completed: 0 };
    bucket.entered += entered;
    bucket.completed += completed;
    buckets.set(key, bucket);
  }
  return [...buckets.entries()]
    .filter(([, v]) => v.entered > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([bucket, v]) => ({ bucket, ...v }));
}
