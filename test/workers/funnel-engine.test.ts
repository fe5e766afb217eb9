/** The pure funnel engine against cases worked out by hand from docs/METRICS.md. */
import fc from 'fast-check';
import { checkDefinition, goalInputSchema, type Goal } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import type { FunnelEvent } from '../../src/funnel/matchers';

const MIN = 60_000;
const at = (minutes: number) => Date.UTC(2025, 2, 3, 10) + minutes * MIN;
let seq = 0;
const ev = (
  event: string,
  minutes: number,
  properties: Record<string, unknown> | null = null,
  type = 'track',
) =>
  ({
    messageId: `m${String((seq += 1)).padStart(4, '0')}`,
    ts: at(minutes),
    type,
    event,
    properties,
  }) satisfies FunnelEvent;
const identify = (minutes: number, traits: Record<string, unknown>) =>
  ev('', minutes, traits, 'identify');
const page = (minutes: number, path: string) =>
  ev('', minutes, { path, url: `https://x.test${path}` }, 'page');

const goal = (steps: string[], windowMs = 86_400_000, extra: Partial<Goal> = {}): Goal => ({
  id: 'g',
  version: 1,
  name: 'g',
  steps: steps.map((event) => ({ event })),
  windowMs,
  ...extra,
});

/** The counted attempt's times (the furthest, then the earliest), as minutes from 10:00. */
function best(events: FunnelEvent[], g: Goal): Array<number | null> | null {
  const attempts = computeAttempts(events, g);
  let top = attempts[0];
  for (const a of attempts) if (top && a.reached > top.reached) top = a;
  return top ? top.times.map((t) => (t === null ? null : (t - at(0)) / MIN)) : null;
}

describe('ordered mode', () => {
  it('follows the worked example: two full attempts, the earlier first', () => {
    const events = [ev('a', 0), ev('b', 5), ev('a', 60), ev('b', 61), ev('c', 90)];
    const attempts = computeAttempts(events, goal(['a', 'b', 'c']));
    expect(attempts.map((a) => a.times)).toEqual([
      [at(0), at(5), at(90)],
      [at(60), at(61), at(90)],
    ]);
    expect(attempts.map((a) => a.reached)).toEqual([3, 3]);
  });

  it('gives the same attempts whatever order events arrive in (C01)', () => {
    const started = ev('signup_started', 0);
    const completed = { ...ev('signup_completed', 0), ts: at(0) + 5000 };
    const g = goal(['signup_started', 'signup_completed']);
    expect(computeAttempts([completed, started], g)).toEqual(
      computeAttempts([started, completed], g),
    );
    expect(computeAttempts([started, completed], g)[0]?.times).toEqual([at(0), at(0) + 5000]);
  });

  it('lets other events come between steps', () => {
    expect(best([ev('a', 0), ev('x', 1), ev('b', 2)], goal(['a', 'b']))).toEqual([0, 2]);
  });

  it('allows equal timestamps between consecutive steps', () => {
    expect(best([ev('b', 0), ev('a', 0)], goal(['a', 'b']))).toEqual([0, 0]);
  });

  it('lets one event fill one step only', () => {
    expect(best([ev('a', 0), ev('a', 1)], goal(['a', 'a', 'a']))).toEqual([0, 1, null]);
  });

  it('reaches every step of A→B→C and A→B→A with repeated events (C19)', () => {
    const events = [ev('a', 0), ev('b', 10), ev('c', 20), ev('c', 25), ev('a', 30)];
    expect(best(events, goal(['a', 'b', 'c'], 60 * MIN))).toEqual([0, 10, 20]);
    expect(best(events, goal(['a', 'b', 'a'], 60 * MIN))).toEqual([0, 10, 30]);
  });

  it('includes a step exactly at the window end and excludes one 1 ms after (C20)', () => {
    const g = goal(['trial', 'subscribed'], 7 * 86_400_000);
    const inside = computeAttempts([ev('trial', 0), ev('subscribed', 7 * 1440)], g);
    expect(inside[0]?.reached).toBe(2);
    const late = { ...ev('subscribed', 7 * 1440), ts: at(7 * 1440) + 1 };
    expect(computeAttempts([ev('trial', 0), late], g)[0]?.reached).toBe(1);
  });

  it('measures the goal window from step 1, not from the previous step (C20)', () => {
    const events = [ev('trial', 0), ev('invited', 5 * 1440), ev('subscribed', 9 * 1440)];
    expect(best(events, goal(['trial', 'invited', 'subscribed'], 7 * 86_400_000))).toEqual([
      0,
      5 * 1440,
      null,
    ]);
  });

  it('keeps one attempt for two step-1 events in the same millisecond', () => {
    const first = ev('a', 0);
    const twin = { ...ev('a', 0), ts: first.ts };
    expect(computeAttempts([first, twin, ev('b', 1)], goal(['a', 'b']))).toHaveLength(1);
  });
});

describe('matchers', () => {
  it('applies property filters: eq, neq on a missing property, in, gt, contains, set', () => {
    const withFilter = (where: Goal['steps'][number]['where']) =>
      goal(['view', 'buy'], 86_400_000, { steps: [{ event: 'view' }, { event: 'buy', where }] });
    const eq = withFilter([{ property: 'plan', op: 'eq', value: 'pro' }]);
    expect(best([ev('view', 0), ev('buy', 1, { plan: 'free' })], eq)).toEqual([0, null]);
    expect(best([ev('view', 0), ev('buy', 1, { plan: 'pro' })], eq)).toEqual([0, 1]);
    expect(best([ev('view', 0), ev('buy', 1, {})], eq)).toEqual([0, null]);
    const neq = withFilter([{ property: 'plan', op: 'neq', value: 'pro' }]);
    expect(best([ev('view', 0), ev('buy', 1, {})], neq)).toEqual([0, 1]);
    const list = withFilter([{ property: 'plan', op: 'in', value: ['pro', 'team'] }]);
    expect(best([ev('view', 0), ev('buy', 1, { plan: 'team' })], list)).toEqual([0, 1]);
    const gt = withFilter([{ property: 'n', op: 'gt', value: 3 }]);
    expect(best([ev('view', 0), ev('buy', 1, { n: 3 }), ev('buy', 2, { n: 4 })], gt)).toEqual([
      0, 2,
    ]);
    const contains = withFilter([{ property: 'sku', op: 'contains', value: 'mat' }]);
    expect(best([ev('view', 0), ev('buy', 1, { sku: 'matt-q' })], contains)).toEqual([0, 1]);
    const set = withFilter([{ property: 'sku', op: 'set' }]);
    expect(
      best([ev('view', 0), ev('buy', 1, { sku: null }), ev('buy', 2, { sku: 'x' })], set),
    ).toEqual([0, 2]);
  });

  it('reads only own properties: constructor or toString is set only when tracked', () => {
    const withFilter = (where: Goal['steps'][number]['where']) =>
      goal(['view', 'buy'], 86_400_000, { steps: [{ event: 'view' }, { event: 'buy', where }] });
    const set = withFilter([{ property: 'constructor', op: 'set' }]);
    expect(best([ev('view', 0), ev('buy', 1, { plan: 'pro' })], set)).toEqual([0, null]);
    expect(best([ev('view', 0), ev('buy', 2, { constructor: 'x' })], set)).toEqual([0, 2]);
    const neq = withFilter([{ property: 'toString', op: 'neq', value: 'y' }]);
    expect(best([ev('view', 0), ev('buy', 1, {})], neq)).toEqual([0, 1]);
  });

  it('matches page calls by path pattern and URL, never track events', () => {
    const g = goal([], 86_400_000, {
      steps: [{ event: 'a' }, { type: 'page', path: '/pricing*' }],
    });
    expect(best([ev('a', 0), page(1, '/about'), page(2, '/pricing/pro')], g)).toEqual([0, 2]);
    expect(best([ev('a', 0), ev('x', 1, { path: '/pricing' })], g)).toEqual([0, null]);
    const byUrl = goal([], 86_400_000, {
      steps: [{ event: 'a' }, { url: 'https://x.test/p?.html' }],
    });
    // `?` is not a wildcard: only `*` is special.
    expect(best([ev('a', 0), page(1, '/pa.html')], byUrl)).toEqual([0, null]);
  });

  it('reaches an any-of step by any of its matchers', () => {
    const g = goal([], 86_400_000, {
      steps: [{ event: 'x' }, { anyOf: [{ event: 'y' }, { event: 'z' }] }],
    });
    expect(best([ev('x', 0), ev('z', 3)], g)).toEqual([0, 3]);
  });

  it('reaches a trait step when an identify first gives the trait the value', () => {
    const g = goal([], 86_400_000, {
      steps: [{ event: 'a' }, { trait: { property: 'plan', op: 'eq', value: 'pro' } }],
    });
    const events = [
      ev('a', 0),
      identify(1, { plan: 'free' }),
      identify(4, { plan: 'pro' }),
      identify(9, { plan: 'pro' }),
    ];
    expect(best(events, g)).toEqual([0, 4]);
    // Already pro before entering, and never entering pro again: the step is not reached.
    expect(
      best([identify(0, { plan: 'pro' }), ev('a', 1), identify(2, { plan: 'pro' })], g),
    ).toEqual([1, null]);
    // Leaving the value and taking it again is a new moment.
    expect(
      best(
        [
          identify(0, { plan: 'pro' }),
          ev('a', 1),
          identify(2, { plan: 'free' }),
          identify(3, { plan: 'pro' }),
        ],
        g,
      ),
    ).toEqual([1, 3]);
  });
});

describe('strict mode', () => {
  const strict = (steps: string[]) => goal(steps, 86_400_000, { mode: 'strict' });

  it('ends an attempt at any other tracked event between steps', () => {
    expect(best([ev('a', 0), ev('x', 1), ev('b', 2)], strict(['a', 'b']))).toEqual([0, null]);
    expect(best([ev('a', 0), ev('b', 2)], strict(['a', 'b']))).toEqual([0, 2]);
  });

  it('ignores identify calls between steps', () => {
    expect(best([ev('a', 0), identify(1, { plan: 'x' }), ev('b', 2)], strict(['a', 'b']))).toEqual([
      0, 2,
    ]);
  });

  it('lets a later attempt complete strictly', () => {
    const events = [ev('a', 0), ev('x', 1), ev('a', 2), ev('b', 3)];
    expect(computeAttempts(events, strict(['a', 'b'])).map((a) => a.reached)).toEqual([1, 2]);
  });

  it('fills an optional step only with the directly following event', () => {
    const g = goal([], 86_400_000, {
      mode: 'strict',
      steps: [{ event: 'a' }, { event: 'b', optional: true }, { event: 'c' }],
    });
    expect(best([ev('a', 0), ev('c', 1)], g)).toEqual([0, null, 1]);
    expect(best([ev('a', 0), ev('b', 1), ev('c', 2)], g)).toEqual([0, 1, 2]);
  });
});

describe('any-order mode', () => {
  const any = (steps: string[], windowMs = 86_400_000) => goal(steps, windowMs, { mode: 'any' });

  it('reaches steps done in any order, with times that never decrease', () => {
    expect(best([ev('b', 0), ev('a', 5)], any(['a', 'b']))).toEqual([5, 5]);
    expect(best([ev('b', 0), ev('a', 5)], goal(['a', 'b']))).toEqual([5, null]);
  });

  it('reaches step k only when steps 1..k are all done', () => {
    expect(best([ev('a', 0), ev('c', 1)], any(['a', 'b', 'c']))).toEqual([0, null, null]);
    expect(best([ev('c', 0), ev('a', 1), ev('b', 2)], any(['a', 'b', 'c']))).toEqual([1, 2, 2]);
  });

  it('keeps every step within the window from the attempt start', () => {
    expect(best([ev('b', 0), ev('a', 11)], any(['a', 'b'], 10 * MIN))).toEqual([11, null]);
  });
});

describe('windows per step', () => {
  const g = (window: string) =>
    goal([], 86_400_000, { steps: [{ event: 'a' }, { event: 'b', window }] });

  it('includes the step window boundary and excludes a minute after', () => {
    expect(best([ev('a', 0), ev('b', 5)], g('5m'))).toEqual([0, 5]);
    expect(best([ev('a', 0), ev('b', 6)], g('5m'))).toEqual([0, null]);
  });

  it('measures a step window from the previous required step', () => {
    const three = goal([], 86_400_000, {
      steps: [{ event: 'a' }, { event: 'b', window: '10m' }, { event: 'c', window: '10m' }],
    });
    expect(best([ev('a', 0), ev('b', 9), ev('c', 18)], three)).toEqual([0, 9, 18]);
    expect(best([ev('a', 0), ev('b', 9), ev('c', 20)], three)).toEqual([0, 9, null]);
  });
});

describe('optional steps', () => {
  const g = goal([], 86_400_000, {
    steps: [{ event: 'a' }, { event: 'b', optional: true }, { event: 'c' }],
  });

  it('lets a person skip an optional step', () => {
    const attempt = computeAttempts([ev('a', 0), ev('c', 3)], g)[0];
    expect(attempt?.times).toEqual([at(0), null, at(3)]);
    expect(attempt?.reached).toBe(3);
  });

  it('fills an optional step between its neighbours only', () => {
    expect(best([ev('a', 0), ev('b', 1), ev('c', 3)], g)).toEqual([0, 1, 3]);
    expect(best([ev('a', 0), ev('c', 3), ev('b', 4)], g)).toEqual([0, null, 3]);
  });

  it('fills an optional step after the last reached step until the window ends', () => {
    expect(best([ev('a', 0), ev('b', 4)], g)).toEqual([0, 4, null]);
  });

  it('rejects optional first and last steps', () => {
    const input = goalInputSchema.parse({
      name: 'x',
      steps: [
        { event: 'a', optional: true },
        { event: 'b', optional: true },
      ],
    });
    expect(checkDefinition(input).map((i) => i.code)).toEqual([
      'optional_edge_step',
      'optional_edge_step',
    ]);
  });
});

describe('exclusions', () => {
  const g = (from?: number, to?: number) =>
    goal(['a', 'b', 'c'], 86_400_000, { exclusions: [{ event: 'x', from, to }] });

  it('removes an attempt with an excluded event between the steps', () => {
    expect(computeAttempts([ev('a', 0), ev('x', 1), ev('b', 2), ev('c', 3)], g(1, 2))).toEqual([]);
  });

  it('keeps an attempt whose excluded event is outside the span', () => {
    expect(best([ev('a', 0), ev('b', 2), ev('x', 3), ev('c', 4)], g(1, 2))).toEqual([0, 2, 4]);
  });

  it('counts a later clean attempt', () => {
    const events = [ev('a', 0), ev('x', 1), ev('b', 2), ev('a', 3), ev('b', 4), ev('c', 5)];
    expect(best(events, g(1, 2))).toEqual([3, 4, 5]);
  });

  it('looks until the window end when the closing step is not reached', () => {
    expect(computeAttempts([ev('a', 0), ev('b', 1), ev('x', 2)], g())).toEqual([]);
  });

  it('refuses an excluded event that is also a step', () => {
    const input = goalInputSchema.parse({
      name: 'x',
      steps: [{ event: 'a' }, { event: 'b' }],
      exclusions: [{ event: 'b' }],
    });
    expect(checkDefinition(input)).toEqual([
      expect.objectContaining({ code: 'exclusion_is_step', path: 'exclusions.0.event' }),
    ]);
  });
});

describe('hold property constant', () => {
  const g = goal(['view', 'cart', 'buy'], 86_400_000, { holdConstant: ['product_id'] });

  it('needs the same value from the first step to the last', () => {
    const events = [
      ev('view', 0, { product_id: 1 }),
      ev('cart', 1, { product_id: 2 }),
      ev('cart', 2, { product_id: '1' }),
      ev('buy', 3, { product_id: 1 }),
    ];
    expect(best(events, g)).toEqual([0, 2, 3]);
  });

  it('does not match a missing property', () => {
    expect(best([ev('view', 0, {}), ev('cart', 1, {}), ev('buy', 2, {})], g)).toEqual([
      0,
      null,
      null,
    ]);
  });
});

describe('values', () => {
  it('records the value property and order key of the event that filled each step', () => {
    const g = goal(['a', 'buy'], 86_400_000, { value: { property: 'revenue', dedupeBy: 'tx' } });
    const buy = ev('buy', 1, { revenue: 10, tx: 't1' });
    expect(computeAttempts([ev('a', 0), buy], g)[0]?.values).toEqual([
      null,
      { value: 10, order: 't1', messageId: buy.messageId },
    ]);
  });
});

describe('properties over random event streams (C19)', () => {
  it('never reaches a required step without the one before, in any mode', () => {
    const names = ['a', 'b', 'c', 'x'];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ name: fc.constantFrom(...names), minute: fc.integer({ min: 0, max: 30 }) }),
          {
            maxLength: 12,
          },
        ),
        fc.constantFrom('ordered' as const, 'strict' as const, 'any' as const),
        (raw, mode) => {
          const events = raw.map((r, i) => ({
            messageId: `r${String(i).padStart(3, '0')}`,
            ts: at(r.minute),
            type: 'track',
            event: r.name,
            properties: null,
          }));
          for (const attempt of computeAttempts(
            events,
            goal(['a', 'b', 'c'], 20 * MIN, { mode }),
          )) {
            const reachedTimes = attempt.times.slice(0, attempt.reached);
            expect(reachedTimes.every((t) => t !== null)).toBe(true);
            expect(attempt.times.slice(attempt.reached).every((t) => t === null)).toBe(true);
            const t = reachedTimes as number[];
            expect(t.every((v, i) => i === 0 || v >= (t[i - 1] as number))).toBe(true);
            expect((t[t.length - 1] as number) - (t[0] as number)).toBeLessThanOrEqual(20 * MIN);
          }
        },
      ),
      { seed: 42, numRuns: 300 },
    );
  });
});

describe('traits at entry', () => {
  it('takes every identify at or before the start, the latest winning', () => {
    const events = [
      identify(0, { plan: 'free', size: 2 }),
      identify(5, { plan: 'pro' }),
      ev('a', 5),
      identify(6, { plan: 'team' }),
    ];
    expect(computeAttempts(events, goal(['a']))[0]?.entryTraits).toEqual({ plan: 'pro', size: 2 });
  });
});
