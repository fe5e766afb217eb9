/** Report metrics over counted attempts, against numbers worked out by hand (docs/METRICS.md). */
import type { Goal } from '../../src/funnel/definition';
import { summarize, timeStats, type CountedAttempt } from '../../src/report/metrics';
import { breakdown, bucketOf, overTime } from '../../src/report/slices';
import { applyFilters } from '../../src/report/build-report';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const T0 = Date.parse('2025-03-03T10:00:00.000Z');

const goal = (steps: Goal['steps'], windowMs = 7 * DAY, extra: Partial<Goal> = {}): Goal => ({
  id: 'g',
  version: 1,
  name: 'g',
  steps,
  windowMs,
  ...extra,
});
const row = (
  times: Array<number | null>,
  segment: Record<string, string | null> = {},
  values: CountedAttempt['values'] = null,
): CountedAttempt => {
  let reached = 0;
  times.forEach((t, k) => {
    if (t !== null && reached === k) reached = k + 1;
  });
  return { times, reached, segment, values };
};
const FAR_FUTURE = Date.parse('2030-01-01T00:00:00Z');

describe('timeStats', () => {
  it('uses linear interpolation between closest ranks', () => {
    expect(timeStats([1000, 2000, 3000, 10_000])).toEqual({
      median: 2.5,
      p90: 7.9,
      mean: 4,
      min: 1,
      max: 10,
    });
  });

  it('gives nulls for no durations', () => {
    expect(timeStats([])).toEqual({ median: null, p90: null, mean: null, min: null, max: null });
  });
});

describe('summarize', () => {
  const ab = goal([{ event: 'a' }, { event: 'b' }]);

  it('counts, converts and drops per step', () => {
    const rows = [row([T0, T0 + 1000]), row([T0, T0 + 3000]), row([T0, null]), row([T0, null])];
    const s = summarize(ab, rows, FAR_FUTURE);
    expect(s.entered).toBe(4);
    expect(s.completed).toBe(2);
    expect(s.steps[1]).toMatchObject({
      count: 2,
      conversionFromPrevious: 0.5,
      dropOff: 2,
      dropOffRate: 0.5,
      medianSecondsFromPrevious: 2,
      secondsFromPrevious: { median: 2, p90: 2.8, mean: 2, min: 1, max: 3 },
    });
  });

  it('keeps time to convert within the window, over converters only (C20)', () => {
    const rows = [row([T0, T0 + 7 * DAY]), row([T0, null]), row([T0, null])];
    expect(summarize(ab, rows, FAR_FUTURE).steps[1]?.secondsFromPrevious.max).toBe(7 * 86_400);
  });

  it('reports open windows as in progress, out of the denominators (C21)', () => {
    const now = Date.parse('2025-04-02T00:00:00Z');
    const g = goal([{ event: 'trial' }, { event: 'subscribed' }], 14 * DAY);
    const rows = [
      row([Date.parse('2025-03-30T10:00:00Z'), Date.parse('2025-04-01T10:00:00Z')]),
      row([Date.parse('2025-03-25T10:00:00Z'), null]),
      row([Date.parse('2025-03-02T10:00:00Z'), null]),
    ];
    const s = summarize(g, rows, now);
    expect(s.entered).toBe(3);
    expect(s.inProgress).toBe(1);
    expect(s.steps[1]).toMatchObject({
      count: 1,
      inProgress: 1,
      conversionFromPrevious: 0.5,
      dropOff: 1,
      // 1 / (3 - 1), not 1 / 3: the person in progress is out of the denominator too.
      dropOffRate: 0.5,
    });
    expect(s.completionRate).toBe(0.5);
  });

  it('takes optional steps against the previous required step', () => {
    const g = goal([{ event: 'a' }, { event: 'b', optional: true }, { event: 'c' }]);
    const rows = [
      row([T0, null, T0 + 3000]),
      row([T0, T0 + 1000, T0 + 3000]),
      row([T0, null, null]),
    ];
    rows[0]!.reached = 3;
    const s = summarize(g, rows, FAR_FUTURE);
    expect(s.steps.map((x) => x.count)).toEqual([3, 1, 2]);
    expect(s.steps[2]).toMatchObject({ conversionFromPrevious: 0.6667, dropOff: 1 });
    // From the nearest earlier filled step: 3 s (skipped b) and 2 s.
    expect(s.steps[2]?.secondsFromPrevious).toMatchObject({ min: 2, max: 3 });
  });

  it('lists completion within 1 and 7 days for a 7-day window', () => {
    const rows = [row([T0, T0 + HOUR]), row([T0, T0 + 2 * DAY]), row([T0, null])];
    expect(summarize(ab, rows, FAR_FUTURE).completionWithin).toEqual([
      { within: '1d', completed: 1, eligible: 3, rate: 0.3333 },
      { within: '7d', completed: 2, eligible: 3, rate: 0.6667 },
    ]);
  });

  it('sums a value once per order key, the earliest event', () => {
    const g = goal([{ event: 'a' }, { event: 'buy' }], 7 * DAY, {
      value: { property: 'revenue', dedupeBy: 'tx' },
    });
    const rows = [
      row([T0, T0 + 1000], {}, [null, [10, 'tx1', 'm1']]),
      row([T0, T0 + 2000], {}, [null, [99, 'tx1', 'm2']]),
      row([T0, T0 + 3000], {}, [null, [5, null, 'm3']]),
    ];
    expect(summarize(g, rows, FAR_FUTURE).steps[1]?.value).toBe(15);
  });
});

describe('breakdown', () => {
  it('attributes each journey to the value at entry (C23)', () => {
    const g = goal([{ event: 'pricing_viewed' }, { event: 'signup_completed' }]);
    const rows = [
      row([T0, T0 + 180_000], { 'property:plan': 'free' }),
      row([T0 + HOUR, null], { 'property:plan': 'free' }),
      row([T0 + 2 * HOUR, T0 + 2 * HOUR + 120_000], {}),
    ];
    const groups = breakdown(g, rows, 'property:plan', 5, FAR_FUTURE);
    expect(groups.map((x) => [x.value, x.kind, x.steps.map((s) => s.count)])).toEqual([
      ['free', 'value', [2, 1]],
      [null, 'none', [1, 1]],
    ]);
  });

  it('keeps the top values and folds the rest into other', () => {
    const g = goal([{ event: 'a' }]);
    const rows = ['x', 'x', 'y', 'z', 'w'].map((v) => row([T0], { device: v }));
    expect(breakdown(g, rows, 'device', 2, FAR_FUTURE).map((x) => [x.value, x.entered])).toEqual([
      ['x', 2],
      ['w', 1],
      [null, 2],
    ]);
  });

  it('keeps tracked values spelled "other" or "(none)" apart from the synthetic groups', () => {
    const g = goal([{ event: 'a' }]);
    const values = ['other', 'other', '(none)', null, 'x', 'y'];
    const rows = values.map((v) => row([T0], v === null ? {} : { device: v }));
    const groups = breakdown(g, rows, 'device', 3, FAR_FUTURE);
    // other 2; then the ties of 1 by value: "(none)", "x", then "y" and no value past the top 3.
    expect(groups.map((x) => [x.value, x.kind, x.entered])).toEqual([
      ['other', 'value', 2],
      ['(none)', 'value', 1],
      ['x', 'value', 1],
      [null, 'other', 2],
    ]);
  });

  it('filters a tracked "(none)" apart from people without a value', () => {
    const rows = ['(none)', null].map((v) => row([T0], v === null ? {} : { device: v }));
    expect(applyFilters(rows, [{ key: 'device', value: '(none)' }]).length).toBe(1);
    expect(applyFilters(rows, [{ key: 'device', value: '(none)' }])[0]?.segment.device).toBe(
      '(none)',
    );
    expect(applyFilters(rows, [{ key: 'device', value: null }])[0]?.segment.device).toBeUndefined();
  });
});

describe('over time', () => {
  it('buckets by local entry day, a 23-hour DST day whole', () => {
    const tz = 'America/New_York';
    // 2025-03-09 is 23 hours long in New York: 05:00Z to 04:00Z the next day.
    expect(bucketOf(Date.parse('2025-03-09T04:59:59Z'), tz, 'day')).toBe('2025-03-08');
    expect(bucketOf(Date.parse('2025-03-09T05:00:00Z'), tz, 'day')).toBe('2025-03-09');
    expect(bucketOf(Date.parse('2025-03-10T03:59:59Z'), tz, 'day')).toBe('2025-03-09');
    expect(bucketOf(Date.parse('2025-03-10T04:00:00Z'), tz, 'day')).toBe('2025-03-10');
    // 2025-11-02 is 25 hours long: 04:00Z to 05:00Z the next day.
    expect(bucketOf(Date.parse('2025-11-03T04:59:59Z'), tz, 'day')).toBe('2025-11-02');
  });

  it('buckets weeks from Monday', () => {
    expect(bucketOf(Date.parse('2025-03-09T12:00:00Z'), 'UTC', 'week')).toBe('2025-03-03');
    expect(bucketOf(Date.parse('2025-03-10T00:00:00Z'), 'UTC', 'week')).toBe('2025-03-10');
  });

  it('counts entries and their completions per entry day', () => {
    const g = goal([{ event: 'a' }, { event: 'b' }]);
    const rows = [row([T0, T0 + 2 * DAY]), row([T0 + DAY, null]), row([T0, null])];
    expect(overTime(g, rows, 'UTC', 'day')).toEqual([
      { bucket: '2025-03-03', entered: 2, completed: 1 },
      { bucket: '2025-03-04', entered: 1, completed: 0 },
    ]);
  });
});
