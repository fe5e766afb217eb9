/** The pure ordered-funnel engine against cases worked out by hand from docs/METRICS.md. */
import { computeAttempts } from '../../src/funnel/engine';
import type { Goal } from '../../src/funnel/definition';
import type { FunnelEvent } from '../../src/funnel/matchers';

const MIN = 60_000;
const at = (minutes: number) => Date.UTC(2025, 2, 3, 10) + minutes * MIN;
let seq = 0;
const ev = (event: string, minutes: number, properties: Record<string, unknown> | null = null) =>
  ({
    messageId: `m${String((seq += 1)).padStart(4, '0')}`,
    ts: at(minutes),
    type: 'track',
    event,
    properties,
  }) satisfies FunnelEvent;

const goal = (steps: string[], windowMs = 86_400_000): Goal => ({
  id: 'g',
  version: 1,
  name: 'g',
  steps: steps.map((event) => ({ event })),
  windowMs,
});

describe('computeAttempts', () => {
  it('follows the worked example: two full attempts, the earlier first', () => {
    const events = [ev('a', 0), ev('b', 5), ev('a', 60), ev('b', 61), ev('c', 90)];
    const attempts = computeAttempts(events, goal(['a', 'b', 'c']));
    expect(attempts.map((a) => a.times)).toEqual([
      [at(0), at(5), at(90)],
      [at(60), at(61), at(90)],
    ]);
  });

  it('gives the same attempts whatever order events arrive in (C01)', () => {
    const started = ev('signup_started', 0);
    const completed = { ...ev('signup_completed', 0), ts: at(0) + 5000 };
    const g = goal(['signup_started', 'signup_completed']);
    const inOrder = computeAttempts([started, completed], g);
    const reversed = computeAttempts([completed, started], g);
    expect(reversed).toEqual(inOrder);
    expect(inOrder[0]?.times).toEqual([at(0), at(0) + 5000]);
  });

  it('allows equal timestamps between consecutive steps', () => {
    const attempts = computeAttempts([ev('b', 0), ev('a', 0)], goal(['a', 'b']));
    expect(attempts[0]?.times).toEqual([at(0), at(0)]);
  });

  it('lets one event fill one step only', () => {
    const attempts = computeAttempts([ev('a', 0), ev('a', 1)], goal(['a', 'a', 'a']));
    // From the first `a`: the second fills step 2, nothing is left for step 3.
    expect(attempts[0]?.times).toEqual([at(0), at(1)]);
  });

  it('includes a step exactly at the window end and excludes one just after', () => {
    const window = 10 * MIN;
    const inside = computeAttempts([ev('a', 0), ev('b', 10)], goal(['a', 'b'], window));
    expect(inside[0]?.times.length).toBe(2);
    const outside = computeAttempts(
      [ev('a', 0), { ...ev('b', 10), ts: at(10) + 1 }],
      goal(['a', 'b'], window),
    );
    expect(outside[0]?.times.length).toBe(1);
  });

  it('measures the window from step 1, not from the previous step', () => {
    const attempts = computeAttempts(
      [ev('a', 0), ev('b', 50), ev('c', 70)],
      goal(['a', 'b', 'c'], 60 * MIN),
    );
    expect(attempts[0]?.times).toEqual([at(0), at(50)]);
  });

  it('applies property filters', () => {
    const g: Goal = {
      ...goal(['view', 'buy']),
      steps: [{ event: 'view' }, { event: 'buy', where: [{ property: 'plan', op: 'eq', value: 'pro' }] }],
    };
    expect(computeAttempts([ev('view', 0), ev('buy', 1, { plan: 'free' })], g)[0]?.times.length).toBe(1);
    expect(computeAttempts([ev('view', 0), ev('buy', 1, { plan: 'pro' })], g)[0]?.times.length).toBe(2);
  });

  it('starts one attempt for two step-1 events in the same millisecond', () => {
    const first = ev('a', 0);
    const twin = { ...ev('a', 0), ts: first.ts };
    expect(computeAttempts([first, twin, ev('b', 1)], goal(['a', 'b']))).toHaveLength(1);
  });
});
