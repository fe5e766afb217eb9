/**
 * The oracle test: generated events and goal definitions (fast-check, fixed seed) go into a
 * real `wrangler dev` stack through the import path; every goal's report, in its own mode and
 * with a mode override, must equal what DuckDB computes from the same raw events
 * (scripts/lib/funnel-oracle.mjs, which shares no code with src/).
 */
import fc from 'fast-check';
import { oracleReport } from '../../scripts/lib/funnel-oracle.mjs';
import { useTestStack } from './test-stack';

const NOW = '2025-03-10T12:00:00.000Z';
const SITE = 'gen';
const SHARE = 'sh_gen_oracle_share_token_0001';
const TZ = 'America/New_York';
// Entries from 2025-03-08 to 2025-03-11 in New York: 2025-03-09 is a 23-hour day.
const RANGE = { from: '2025-03-08', to: '2025-03-11' };
const RANGE_MS = {
  from: Date.parse('2025-03-08T05:00:00Z'),
  to: Date.parse('2025-03-11T04:00:00Z'),
};
const SPAN_START = Date.parse('2025-03-07T20:00:00Z');
const SPAN_MINUTES = Math.floor((Date.parse(NOW) - SPAN_START) / 60_000);
const SEED = 20_250_309;

const stack = useTestStack('funnel-oracle', { GOALSTEP_NOW: NOW });

type Json = Record<string, unknown>;

/** One person's events: a burst of minutes after a random start, on a one-minute grid. */
const personArb = fc.record({
  start: fc.integer({ min: 0, max: SPAN_MINUTES - 1 }),
  events: fc.array(
    fc.record({
      // Offsets on window edges (30m, 1h, 2h, 6h, 1d apart) test the inclusive boundaries.
      offset: fc.oneof(
        fc.integer({ min: 0, max: 90 }),
        fc.constantFrom(0, 30, 60, 120, 180, 360, 1440),
        fc.integer({ min: 0, max: 4000 }),
      ),
      kind: fc.constantFrom(
        'a',
        'a',
        'b',
        'b',
        'c',
        'd',
        'x',
        'pricing',
        'pro-page',
        'home',
        'plan',
      ),
      productId: fc.constantFrom(1, 2, undefined),
      revenue: fc.constantFrom(5, 10, 20, undefined),
      tx: fc.constantFrom('t1', 't2', 't3', undefined),
      plan: fc.constantFrom('free', 'pro'),
      source: fc.constantFrom('google', 'meta', 'bing', undefined),
    }),
    { minLength: 1, maxLength: 10 },
  ),
});

const matcherArb = fc.oneof(
  fc.constantFrom('a', 'b', 'c', 'd').map((event) => ({ event })),
  fc
    .constantFrom('b', 'c')
    .map((event) => ({ event, where: [{ property: 'product_id', op: 'eq', value: 1 }] })),
  fc.constant({ event: 'c', where: [{ property: 'revenue', op: 'gt', value: 5 }] }),
  fc.constant({ anyOf: [{ event: 'c' }, { event: 'd' }] }),
  fc.constant({ type: 'page', path: '/pricing*' }),
);

const goalArb = fc
  .record({
    first: fc.constantFrom('a', 'b').map((event) => ({ event })),
    rest: fc.array(
      fc.record({
        matcher: fc.oneof(
          { weight: 5, arbitrary: matcherArb },
          { weight: 1, arbitrary: fc.constant(null) },
        ),
        optional: fc.boolean(),
        window: fc.constantFrom(undefined, undefined, '30m', '2h'),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    mode: fc.constantFrom('ordered', 'strict', 'any'),
    window: fc.constantFrom('1h', '6h', '1d', '3d'),
    exclusion: fc.option(fc.integer({ min: 1, max: 3 })),
    hold: fc.boolean(),
    value: fc.boolean(),
  })
  .map((g) => {
    const steps: Json[] = [g.first];
    g.rest.forEach((r, i) => {
      const last = i === g.rest.length - 1;
      const step: Json = r.matcher ?? { trait: { property: 'plan', op: 'eq', value: 'pro' } };
      steps.push({
        ...step,
        ...(r.optional && !last ? { optional: true } : {}),
        ...(r.window ? { window: r.window } : {}),
      });
    });
    const goal: Json = { name: 'generated', steps, mode: g.mode, window: g.window };
    if (g.exclusion !== null) {
      const from = Math.min(g.exclusion, steps.length - 1);
      goal.exclusions = [{ event: 'x', from, to: steps.length }];
    }
    if (g.hold) goal.holdConstant = ['product_id'];
    if (g.value) goal.value = { property: 'revenue', dedupeBy: 'tx' };
    return goal;
  });

function generate(): { events: Json[]; goals: Json[] } {
  const [people] = fc.sample(fc.array(personArb, { minLength: 80, maxLength: 80 }), {
    seed: SEED,
    numRuns: 1,
  });
  const [goals] = fc.sample(fc.array(goalArb, { minLength: 10, maxLength: 10 }), {
    seed: SEED + 1,
    numRuns: 1,
  });
  const events: Json[] = [];
  let id = 0;
  people!.forEach((person, p) => {
    for (const e of person.events) {
      const minute = Math.min(person.start + e.offset, SPAN_MINUTES);
      const timestamp = new Date(SPAN_START + minute * 60_000).toISOString();
      // Random message ids, so ties at one minute are ordered by id, not by generation order.
      const messageId = `g-${((id += 1) * 7919) % 100_003}-${id}`;
      const userId = `p${String(p).padStart(3, '0')}`;
      const context = e.source ? { campaign: { source: e.source } } : {};
      if (e.kind === 'plan') {
        events.push({
          type: 'identify',
          userId,
          messageId,
          timestamp,
          traits: { plan: e.plan },
          context,
        });
        continue;
      }
      const properties: Json = {};
      if (e.productId !== undefined) properties.product_id = e.productId;
      if (e.revenue !== undefined) properties.revenue = e.revenue;
      if (e.tx !== undefined) properties.tx = e.tx;
      if (e.kind === 'pricing' || e.kind === 'pro-page' || e.kind === 'home') {
        const path = { pricing: '/pricing', 'pro-page': '/pricing/pro', home: '/home' }[e.kind];
        events.push({
          type: 'page',
          name: e.kind === 'home' ? 'Home' : 'Pricing',
          userId,
          messageId,
          timestamp,
          properties: { ...properties, path },
          context,
        });
      } else {
        events.push({
          type: 'track',
          event: e.kind,
          userId,
          messageId,
          timestamp,
          properties,
          context,
        });
      }
    }
  });
  return { events, goals: goals! };
}

async function call(method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(`${stack().baseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${stack().adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
  return JSON.parse(text) as Json;
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The fields both sides compute. */
function comparable(r: Json): Json {
  const summary = (s: Json) => ({
    entered: s.entered,
    completed: s.completed,
    inProgress: s.inProgress,
    completionRate: s.completionRate,
    completionWithin: s.completionWithin,
    steps: (s.steps as Json[]).map((step) => ({
      index: step.index,
      count: step.count,
      inProgress: step.inProgress,
      conversionFromPrevious: step.conversionFromPrevious,
      conversionFromFirst: step.conversionFromFirst,
      dropOff: step.dropOff,
      dropOffRate: step.dropOffRate,
      secondsFromPrevious: step.secondsFromPrevious,
      value: step.value,
    })),
  });
  const breakdown = r.breakdown as { by: string; top: number; groups: Json[] } | null;
  return {
    ...summary(r),
    overTime: r.overTime,
    breakdown: breakdown && {
      by: breakdown.by,
      top: breakdown.top,
      groups: breakdown.groups.map((g) => ({ value: g.value, kind: g.kind, ...summary(g) })),
    },
  };
}

describe('generated goals against the DuckDB oracle', () => {
  const { events, goals } = generate();
  // What the compared reports exercised, so that agreement on empty answers cannot pass.
  const seen = { laterSteps: 0, inProgress: 0, values: 0, other: 0, days: new Set<string>() };

  it('imports the generated events and builds every goal', async () => {
    await call('PUT', `/admin/sites/${SITE}`, { name: 'generated' });
    await call('POST', `/admin/sites/${SITE}/shares`, { token: SHARE });
    // Half the goals exist while events arrive; the other half are rebuilt from stored events.
    for (const [i, goal] of goals.slice(0, 5).entries())
      await call('PUT', `/admin/sites/${SITE}/goals/g${i}`, goal);
    for (let i = 0; i < events.length; i += 100) {
      const res = await call('POST', `/v1/import?site=${SITE}`, {
        batch: events.slice(i, i + 100),
      });
      expect(res.rejected).toEqual([]);
    }
    for (const [i, goal] of goals.slice(5).entries())
      await call('PUT', `/admin/sites/${SITE}/goals/g${i + 5}`, goal);
    await waitFor(
      async () => (await call('GET', `/admin/sites/${SITE}/pending`)).pendingBatches === 0,
      'ingest',
    );
    for (let i = 0; i < goals.length; i += 1) {
      await waitFor(
        async () =>
          (await call('GET', `/admin/sites/${SITE}/goals/g${i}/versions`)).readyVersion === 1,
        `goal g${i} to be built`,
      );
    }
  });

  for (let i = 0; i < 10; i += 1) {
    it(`agrees on goal g${i} in its own mode and in another`, async () => {
      const goal = goals[i] as Json;
      const own = goal.mode as string;
      const other = own === 'ordered' ? 'strict' : own === 'strict' ? 'any' : 'ordered';
      for (const view of [
        {
          mode: own,
          window: goal.window as string,
          breakdown: i % 2 === 0 ? 'utm_source' : 'trait:plan',
          top: 2,
          interval: 'day',
        },
        { mode: other, window: '2d', breakdown: null, top: 5, interval: 'week' },
      ]) {
        const params = new URLSearchParams({
          ...RANGE,
          tz: TZ,
          format: 'json',
          interval: view.interval,
        });
        if (view.mode !== own) params.set('mode', view.mode);
        if (view.window !== goal.window) params.set('window', view.window);
        if (view.breakdown) {
          params.set('breakdown', view.breakdown);
          params.set('top', String(view.top));
        }
        const res = await fetch(`${stack().baseUrl}/r/${SHARE}/g${i}?${params}`, {
          headers: { Authorization: `Bearer ${stack().adminToken}`, 'Cache-Control': 'no-cache' },
        });
        const actual = (await res.json()) as Json;
        expect(res.status, JSON.stringify(actual)).toBe(200);
        expect(actual.source).toBe(
          view.mode === own && view.window === goal.window ? 'progress' : 'events',
        );
        const expected = await oracleReport({
          events,
          goal,
          view: { ...view, ...RANGE_MS, tz: TZ, now: Date.parse(NOW) },
        });
        expect(comparable(actual), `${JSON.stringify(goal)} ${JSON.stringify(view)}`).toEqual(
          expected,
        );
        const steps = expected.steps as Array<{ count: number; value: number | null }>;
        seen.laterSteps += steps.slice(1).reduce((sum, step) => sum + step.count, 0);
        seen.inProgress += expected.inProgress as number;
        seen.values += steps.filter((step) => step.value !== null).length;
        const groups =
          (expected.breakdown as { groups: Array<{ kind: string }> } | null)?.groups ?? [];
        seen.other += groups.filter((g) => g.kind === 'other').length;
        for (const b of expected.overTime as Array<{ bucket: string }>) seen.days.add(b.bucket);
      }
    });
  }

  it('exercised later steps, open windows, values, other and the 23-hour day', () => {
    expect(seen.laterSteps).toBeGreaterThan(20);
    expect(seen.inProgress).toBeGreaterThan(0);
    expect(seen.values).toBeGreaterThan(0);
    expect(seen.other).toBeGreaterThan(0);
    expect(seen.days.has('2025-03-09')).toBe(true);
  });
});
