/**
 * The funnel report and admin endpoints through the real Worker, D1 and the site's Durable
 * Object: overrides answered from stored events, versions, the catalogue and people lists.
 * Expected numbers are worked out by hand from docs/METRICS.md.
 */
import {
  createExecutionContext,
  createScheduledController,
  env,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import { markReady } from '../../src/funnel/goal-store';
import worker from '../../src/index';
import { ADMIN, importBatch, seedSite, settle, track, waitReady, type TestSite } from './helpers';

const BASE = 'https://goalstep.test';
const T = (minutes: number) => new Date(Date.UTC(2025, 2, 3, 10, minutes)).toISOString();

interface Report {
  version: number;
  latestVersion: number;
  rebuilding: boolean;
  mode: string;
  source: string;
  steps: Array<{ count: number }>;
  breakdown: { groups: Array<{ value: string | null; kind: string; entered: number }> } | null;
}

async function getReport(site: TestSite, query = ''): Promise<Report> {
  const res = await SELF.fetch(
    `${BASE}/r/${site.shareToken}/${site.goalId}?from=2025-03-03&to=2025-03-04&format=json${query}`,
    { headers: { ...ADMIN, 'Cache-Control': 'no-cache' } },
  );
  expect(res.status).toBe(200);
  return (await res.json()) as Report;
}

const admin = (path: string, init: RequestInit = {}) =>
  SELF.fetch(`${BASE}${path}`, {
    ...init,
    headers: { ...ADMIN, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
  });

describe('funnel report', () => {
  it('answers a mode override from stored events and says so', async () => {
    const site = await seedSite('modes', ['a', 'b']);
    await importBatch(site, [
      track('a', { anonymousId: 'p1' }, 'm1', T(0)),
      track('x', { anonymousId: 'p1' }, 'm2', T(1)),
      track('b', { anonymousId: 'p1' }, 'm3', T(2)),
      track('b', { anonymousId: 'p2' }, 'm4', T(0)),
      track('a', { anonymousId: 'p2' }, 'm5', T(5)),
    ]);
    await settle(site);

    const ordered = await getReport(site);
    expect([ordered.source, ordered.mode, ordered.steps.map((s) => s.count)]).toEqual([
      'progress',
      'ordered',
      [2, 1],
    ]);
    const strict = await getReport(site, '&mode=strict');
    expect([strict.source, strict.steps.map((s) => s.count)]).toEqual(['events', [2, 0]]);
    const any = await getReport(site, '&mode=any');
    expect(any.steps.map((s) => s.count)).toEqual([2, 2]);
    const short = await getReport(site, '&window=1m');
    expect([short.source, short.steps.map((s) => s.count)]).toEqual(['events', [2, 0]]);
  });

  it('refuses an unknown mode, window or breakdown with a stable code', async () => {
    const site = await seedSite('badview', ['a', 'b']);
    for (const [query, code] of [
      ['&mode=fast', 'invalid_mode'],
      ['&window=7y', 'invalid_window'],
      ['&breakdown=shoe_size', 'invalid_breakdown'],
    ] as const) {
      const res = await SELF.fetch(`${BASE}/r/${site.shareToken}/goal?format=json${query}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code });
    }
  });

  it('breaks down by an entry property with a no-value group for people without it', async () => {
    const site = await seedSite('split', ['a', 'b']);
    await importBatch(site, [
      { ...track('a', { anonymousId: 's1' }, 'm1', T(0)), properties: { plan: 'free' } },
      { ...track('b', { anonymousId: 's1' }, 'm2', T(1)), properties: { plan: 'pro' } },
      { ...track('a', { anonymousId: 's2' }, 'm3', T(0)), properties: { plan: 'free' } },
      track('a', { anonymousId: 's3' }, 'm4', T(0)),
    ]);
    await settle(site);
    const r = await getReport(site, '&breakdown=property:plan');
    expect(r.breakdown?.groups.map((g) => [g.value, g.kind, g.entered])).toEqual([
      ['free', 'value', 2],
      [null, 'none', 1],
    ]);
  });

  it('keeps the entry values that fit 2,000 characters, leaving out only a long one', async () => {
    const site = await seedSite('split-long', ['a', 'b']);
    // `{"property:plan":"pro"}` is 23 characters; each `"property:blob":"x…"` entry adds 19 + n
    // with its comma, so a blob of 1,958 characters fills the JSON to exactly 2,000 (kept) and
    // one of 1,959 passes it (left out alone: `plan` stays).
    const props = (n: number) => ({ plan: 'pro', blob: 'x'.repeat(n) });
    await importBatch(site, [
      { ...track('a', { anonymousId: 'q1' }, 'q1', T(0)), properties: props(1958) },
      { ...track('a', { anonymousId: 'q2' }, 'q2', T(0)), properties: props(1959) },
      { ...track('a', { anonymousId: 'q3' }, 'q3', T(0)), properties: props(3000) },
      { ...track('a', { anonymousId: 'q4' }, 'q4', T(0)), properties: { plan: 'free' } },
    ]);
    await settle(site);
    const groups = async (query: string) =>
      (await getReport(site, query)).breakdown?.groups.map((g) => [g.value, g.entered]);
    expect(await groups('&breakdown=property:plan')).toEqual([
      ['pro', 3],
      ['free', 1],
    ]);
    // The blob of q1 fit: q1 alone has it (groups by entrants, the no-value group competing).
    expect(await groups('&breakdown=property:blob')).toEqual([
      [null, 3],
      ['x'.repeat(1958), 1],
    ]);
  });

  it('reaches a trait step from identify traits through the Durable Object', async () => {
    const site = await seedSite('traits', ['a', 'b']);
    await admin('/admin/sites/traits/goals/goal', {
      method: 'PUT',
      body: JSON.stringify({
        name: 'Upgrade',
        steps: [{ event: 'a' }, { trait: { property: 'plan', op: 'eq', value: 'pro' } }],
        note: 'trait step',
      }),
    });
    await waitReady('traits', 'goal', 2);
    await importBatch(site, [
      track('a', { userId: 'u1' }, 'm1', T(0)),
      { type: 'identify', userId: 'u1', traits: { plan: 'pro' }, messageId: 'm2', timestamp: T(3) },
    ]);
    await settle(site);
    expect((await getReport(site)).steps.map((s) => s.count)).toEqual([1, 1]);
  });
});

describe('goal versions', () => {
  it('shows the previous version while a new one rebuilds, then the new one', async () => {
    const site = await seedSite('versions', ['a', 'b']);
    await importBatch(site, [
      track('a', { anonymousId: 'v1' }, 'm1', T(0)),
      track('b', { anonymousId: 'v1' }, 'm2', T(1)),
      track('c', { anonymousId: 'v1' }, 'm3', T(2)),
    ]);
    await settle(site);
    await waitReady('versions', 'goal', 1);

    const saved = await admin('/admin/sites/versions/goals/goal', {
      method: 'PUT',
      body: JSON.stringify({
        name: 'Test goal',
        steps: [{ event: 'a' }, { event: 'c' }],
        note: 'c, not b',
      }),
    });
    expect(await saved.json()).toMatchObject({ version: 2, created: true });
    await waitReady('versions', 'goal', 2);
    const now = await getReport(site);
    expect([now.version, now.rebuilding, now.steps.map((s) => s.count)]).toEqual([
      2,
      false,
      [1, 1],
    ]);

    // An old version stays readable, computed from stored events.
    const old = await getReport(site, '&version=1');
    expect([old.version, old.source, old.steps.map((s) => s.count)]).toEqual([1, 'events', [1, 1]]);

    // While version 2 is not ready the report shows version 1 and says so.
    await env.DB.prepare("UPDATE goals SET ready_version = 1 WHERE site_id = 'versions'").run();
    const during = await getReport(site);
    expect([during.version, during.latestVersion, during.rebuilding]).toEqual([1, 2, true]);
    // Asking for the version still rebuilding computes it from stored events, not from its
    // progress rows, which may be incomplete (here: emptied, as at the start of a rebuild).
    await env.DB.prepare("DELETE FROM attempts WHERE site_id = 'versions' AND version = 2").run();
    const pinned = await getReport(site, '&version=2');
    expect([pinned.version, pinned.source, pinned.steps.map((s) => s.count)]).toEqual([
      2,
      'events',
      [1, 1],
    ]);

    const versions = (await (await admin('/admin/sites/versions/goals/goal/versions')).json()) as {
      versions: Array<{ version: number; note: string | null; createdBy: string }>;
    };
    expect(versions.versions.map((v) => [v.version, v.note, v.createdBy])).toEqual([
      [2, 'c, not b', 'root'],
      [1, null, 'root'],
    ]);
  });

  it('never marks ready a version saved over during its rebuild (review finding)', async () => {
    // A second save while version 2 rebuilds: the walk goes on with version 3's definition, so
    // version 2's rows are incomplete and share links must keep showing version 1 until 3.
    const site = await seedSite('saved-over', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    await env.DB.prepare(
      "UPDATE goals SET current_version = 3 WHERE site_id = 'saved-over' AND id = 'goal'",
    ).run();
    const ready = async () =>
      (
        await env.DB.prepare(
          "SELECT ready_version AS v FROM goals WHERE site_id = 'saved-over'",
        ).first<{ v: number }>()
      )?.v;
    await markReady(env.DB, site.siteId, [{ id: 'goal', version: 2 }]);
    expect(await ready()).toBe(1);
    await markReady(env.DB, site.siteId, [{ id: 'goal', version: 3 }]);
    expect(await ready()).toBe(3);
  });

  it('refuses an excluded event that is also a step', async () => {
    await seedSite('excl', ['a', 'b']);
    const res = await admin('/admin/sites/excl/goals/goal', {
      method: 'PUT',
      body: JSON.stringify({
        name: 'x',
        steps: [{ event: 'a' }, { event: 'b' }],
        exclusions: [{ event: 'a' }],
      }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'exclusion_is_step' });
  });
});

describe('catalogue and people lists', () => {
  it('lists event names with counts, times and property types, one entry per key', async () => {
    const site = await seedSite('catalogue', ['a', 'b']);
    await importBatch(site, [
      { ...track('a', { anonymousId: 'c1' }, 'm1', T(0)), properties: { n: 1, s: 'x' } },
      { ...track('a', { anonymousId: 'c1' }, 'm2', T(5)), properties: { n: 2.5 } },
      {
        type: 'page',
        anonymousId: 'c1',
        name: 'Pricing',
        properties: { path: '/pricing' },
        messageId: 'm3',
        timestamp: T(6),
      },
    ]);
    await settle(site);
    const body = (await (await admin('/admin/sites/catalogue/catalogue')).json()) as {
      events: Array<{
        name: string;
        count: number;
        firstSeen: string;
        lastSeen: string;
        properties: unknown[];
      }>;
      pages: Array<{ path: string; count: number }>;
    };
    expect(body.events[0]).toEqual({
      type: 'track',
      name: 'a',
      count: 2,
      firstSeen: T(0),
      lastSeen: T(5),
      // n was an integer once and a real once: one entry with both types.
      properties: [
        { key: 'n', types: ['integer', 'real'], count: 2 },
        { key: 's', types: ['text'], count: 1 },
      ],
    });
    expect(body.pages).toEqual([expect.objectContaining({ path: '/pricing', count: 1 })]);
  });

  it('lists who reached a step but not the next, for admins only', async () => {
    const site = await seedSite('people', ['a', 'b']);
    await importBatch(site, [
      track('a', { userId: 'u-done' }, 'm1', T(0)),
      track('b', { userId: 'u-done' }, 'm2', T(1)),
      track('a', { userId: 'u-stuck' }, 'm3', T(0)),
    ]);
    await settle(site);
    const path = '/admin/sites/people/goals/goal/people?step=1&from=2025-03-03&to=2025-03-04';
    const body = (await (await admin(path)).json()) as { people: Array<{ personId: string }> };
    expect(body.people.map((p) => p.personId)).toEqual(['u:u-stuck']);
    const anonymous = await SELF.fetch(`${BASE}${path}`);
    expect(anonymous.status).toBe(401);
  });
});

describe('rebuilding while events arrive', () => {
  it('loses and double counts nothing when a version is saved mid-ingest', async () => {
    const site = await seedSite('midway', ['a', 'b']);
    const person = (i: number) => [
      track('a', { userId: `m${i}` }, `m${i}-1`, T(i)),
      track('b', { userId: `m${i}` }, `m${i}-2`, T(i + 1)),
      track('c', { userId: `m${i}` }, `m${i}-3`, T(i + 2)),
    ];
    await importBatch(site, [...person(0), ...person(1)]);
    // Version 2 (a → c) is saved while two more batches are on their way.
    const [saved] = await Promise.all([
      admin('/admin/sites/midway/goals/goal', {
        method: 'PUT',
        body: JSON.stringify({ name: 'Test goal', steps: [{ event: 'a' }, { event: 'c' }] }),
      }),
      importBatch(site, [...person(2), ...person(3)]),
      importBatch(site, [...person(4), ...person(1)]),
    ]);
    expect(await saved.json()).toMatchObject({ version: 2 });
    await settle(site);
    await waitReady('midway', 'goal', 2);

    const r = await getReport(site);
    expect([r.version, r.rebuilding, r.steps.map((s) => s.count)]).toEqual([2, false, [5, 5]]);
    const rows = await env.DB.prepare(
      `SELECT person_id, COUNT(*) AS n FROM attempts
       WHERE site_id = 'midway' AND version = 2 GROUP BY person_id`,
    ).all<{ person_id: string; n: number }>();
    // One attempt per person: nothing lost or doubled by the concurrent writes.
    expect(rows.results.map((r) => [r.person_id, r.n]).sort()).toEqual(
      [0, 1, 2, 3, 4].map((i) => [`u:m${i}`, 1]),
    );
  });
});

describe('goals stored before modes existed', () => {
  it('keeps the version when the same goal is saved again', async () => {
    await seedSite('legacy', ['a', 'b']);
    // A definition as the previous release stored it: steps and window only.
    await env.DB.prepare(
      `UPDATE goal_versions SET definition = '{"steps":[{"event":"a"},{"event":"b"}],"window":"7d"}'
       WHERE site_id = 'legacy'`,
    ).run();
    const again = await admin('/admin/sites/legacy/goals/goal', {
      method: 'PUT',
      body: JSON.stringify({
        name: 'Test goal',
        window: '7d',
        steps: [{ event: 'a' }, { event: 'b' }],
      }),
    });
    expect(await again.json()).toMatchObject({ version: 1, created: false });
  });
});

describe('rebuilds cut short', () => {
  it('are restarted by the cron until the current version is ready', async () => {
    const site = await seedSite('stuck', ['a', 'b']);
    await importBatch(site, [
      track('a', { userId: 's1' }, 'm1', T(0)),
      track('b', { userId: 's1' }, 'm2', T(1)),
    ]);
    await settle(site);
    // As if the Durable Object had been evicted before the rebuild marked the version ready.
    await env.DB.prepare("UPDATE goals SET ready_version = NULL WHERE site_id = 'stuck'").run();
    await env.DB.prepare("DELETE FROM attempts WHERE site_id = 'stuck'").run();
    expect((await getReport(site)).rebuilding).toBe(true);

    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: '*/15 * * * *' }), env, ctx);
    await waitOnExecutionContext(ctx);
    await waitReady('stuck', 'goal', 1);
    const r = await getReport(site);
    expect([r.rebuilding, r.steps.map((s) => s.count)]).toEqual([false, [1, 1]]);
  });
});

describe('report page', () => {
  it('says when it shows a previous version and lists the breakdown and the trend', async () => {
    const site = await seedSite('page', ['a', 'b']);
    await importBatch(site, [
      { ...track('a', { userId: 'h1' }, 'm1', T(0)), context: { campaign: { source: 'news' } } },
      track('b', { userId: 'h1' }, 'm2', T(1)),
    ]);
    await settle(site);
    await waitReady('page', 'goal', 1);
    await admin('/admin/sites/page/goals/goal', {
      method: 'PUT',
      body: JSON.stringify({ name: 'Test goal', steps: [{ event: 'b' }, { event: 'a' }] }),
    });
    await waitReady('page', 'goal', 2);
    await env.DB.prepare("UPDATE goals SET ready_version = 1 WHERE site_id = 'page'").run();

    const res = await SELF.fetch(
      `${BASE}/r/${site.shareToken}/goal?from=2025-03-03&to=2025-03-04&breakdown=utm_source`,
      { headers: { ...ADMIN, 'Cache-Control': 'no-cache' } },
    );
    const html = await res.text();
    expect(html).toContain('Version 2 is being rebuilt from stored events');
    expect(html).toContain('<tr data-group="news" data-kind="value">');
    expect(html).toContain('<td>2025-03-03</td>');
  });
});
