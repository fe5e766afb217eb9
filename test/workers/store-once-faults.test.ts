/**
 * Each event stored once, under faults (from a second review): D1 holds what the site object
 * took, an erasure leaves no copy in D1 (docs/ARCHITECTURE.md "Durable before acknowledged"), a
 * reconciled batch, an erasure whose D1 write fails, text that is not ASCII, a pending batch of
 * an erased person. Expected values come from those documented rules and from D1's documented
 * 2 MB value limit, not from the code.
 */
import {
  createExecutionContext,
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import type { Env } from '../../src/env';
import { segmentOf } from '../../src/funnel/segment';
import worker from '../../src/index';
import { reconcilePending, RECONCILE_AFTER_MS } from '../../src/ingest/reconcile';
import { faultyDb } from './faults';
import {
  ADMIN,
  beacon,
  counts,
  ingest,
  packedCopies,
  report,
  seedSite,
  settle,
  stateOf,
  storedIds,
  track,
} from './helpers';
import type { TestSite } from './helpers';

const H = 3_600_000;
/** D1's documented cap on a string, BLOB or row (developers.cloudflare.com/d1/platform/limits). */
const D1_MAX_VALUE_BYTES = 2_000_000;

const T = (seconds: number) => new Date(Date.now() - 60_000 + seconds * 1000).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

/** Every pack entry (copies included) D1 holds for a site that names `userId`. */
async function copiesOfUser(siteId: string, userId: string): Promise<number> {
  const row = await env.DB.prepare(
    `SELECT COUNT(*) AS n FROM event_packs h CROSS JOIN json_each(h.events) j
     WHERE h.site_id = ? AND j.value ->> 4 = ?`,
  )
    .bind(siteId, userId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/** Makes every D1 batch of the object's current instance fail first, `n` times. */
const failObjectBatches = (stub: ReturnType<typeof stateOf>, n: number) =>
  runInDurableObject(stub, (instance) => {
    const object = instance as unknown as { env: Env };
    object.env = { ...object.env, DB: faultyDb(object.env.DB, { failBatchesBefore: n }) };
  });

const erase = (site: TestSite, id: string) =>
  SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/people/${encodeURIComponent(id)}`, {
    method: 'DELETE',
    headers: ADMIN,
  });

/** Two events of one visitor who viewed and added to cart: [1, 1] on the goal (view, cart). */
const visit = (ids: { anonymousId?: string; userId?: string }, prefix: string) => ({
  batch: [track('view', ids, `${prefix}-m1`, T(0)), track('cart', ids, `${prefix}-m2`, T(1))],
});

describe('a reconciled batch whose copy to D1 failed', () => {
  it('is in D1 once the reconciler applies it again in a new instance', async () => {
    const site = await seedSite('r7b-apply', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    // DEFER_APPLY (docs/INGEST.md): the Worker records the batch, the reconciler applies it.
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      beacon(site, visit({ anonymousId: 'ap' }, 'ra')),
      { ...env, DEFER_APPLY: '1' },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(await res.json()).toMatchObject({ accepted: 2 });

    // D1 blips once, during the apply's write cycle: the apply fails, the record stays.
    await failObjectBatches(stub, 1);
    const later = Date.now() + RECONCILE_AFTER_MS + 1_000;
    expect(await reconcilePending(env, later)).toBe(0);
    // The instance goes idle and is evicted before the next cron (15 min later in production).
    await evictDurableObject(stub);
    expect(await reconcilePending(env, later)).toBe(1);
    await settle(site);

    // The object counts both events; docs/ARCHITECTURE.md: "D1 holds exactly what the object
    // took". Both events must be in D1's packs.
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    expect(await storedIds(site.siteId)).toEqual(['ra-m1', 'ra-m2']);
  });
});

describe('an erasure whose D1 write fails', () => {
  it('leaves no copy in D1 once the admin retries it after an eviction', async () => {
    const site = await seedSite('r7b-erase', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await ingest(site, visit({ userId: 'zz' }, 'rz'));
    await ingest(site, visit({ userId: 'keep' }, 'rk'));
    await settle(site);
    expect(await storedIds(site.siteId)).toEqual(['rk-m1', 'rk-m2', 'rz-m1', 'rz-m2']);

    // D1 fails the erasure's batch once: the DELETE fails, and the admin retries it.
    await failObjectBatches(stub, 1);
    const first = await erase(site, 'zz');
    await evictDurableObject(stub);
    const retried = await erase(site, 'zz');
    await settle(site);

    // The first answer may be an error; the retry must complete the erasure, and none of zz's
    // events may stay in D1 (docs/INGEST.md, docs/ARCHITECTURE.md: it removes every copy).
    expect(first.status).not.toBe(200);
    expect.soft(retried.status).toBe(200);
    expect(await copiesOfUser(site.siteId, 'zz')).toBe(0);
    expect(await storedIds(site.siteId)).toEqual(['rk-m1', 'rk-m2']);
  });
});

describe('a body within the 500 KB limit whose text is not ASCII', () => {
  it('is copied to D1 in values of at most 2 MB, and does not stop later events', async () => {
    const site = await seedSite('r7b-cjk', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    // A batch context of 54 strings of 2,700 CJK characters (8,100 UTF-8 bytes each, under the
    // 8 KB string cap): about 437 KB, which Segment's batch context applies to every event.
    const context: Record<string, string> = {};
    for (let k = 0; k < 54; k += 1) context[`k${k}`] = '中'.repeat(2700);
    const batch = Array.from({ length: 10 }, (_, i) =>
      track('view', { anonymousId: `cjk${i}` }, `cjk-${i}`, T(i)),
    );
    const body = JSON.stringify({ batch, context });
    expect(new TextEncoder().encode(body).byteLength).toBeLessThan(500 * 1024);
    expect(await (await ingest(site, body)).json()).toMatchObject({ accepted: 10 });
    await runDurableObjectAlarm(stub);

    // A later ordinary visitor, and the cycles after it.
    expect(await (await ingest(site, visit({ anonymousId: 'ok' }, 'ok'))).json()).toMatchObject({
      accepted: 2,
    });
    for (let i = 0; i < 3; i += 1) await runDurableObjectAlarm(stub);

    const packs = await env.DB.prepare(
      `SELECT COUNT(*) AS n, MAX(length(CAST(events AS BLOB))) AS bytes
       FROM event_packs WHERE site_id = ?`,
    )
      .bind(site.siteId)
      .first<{ n: number; bytes: number | null }>();
    // 11 visitors viewed, one of them (ok) added to cart.
    expect.soft(counts(await report(site, today(), tomorrow()))).toEqual([11, 1]);
    expect.soft((await storedIds(site.siteId)).length).toBe(12);
    expect(packs?.bytes ?? 0).toBeLessThanOrEqual(D1_MAX_VALUE_BYTES);
  });
});

describe('a lost cycle recovered after a spell of DEFER_APPLY traffic', () => {
  it('marks the end of an apply cycle, where a later recovery starts', async () => {
    const site = await seedSite('r7b-defer', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    // The last write cycle of the receive path ended an hour ago; since then the site ran with
    // DEFER_APPLY=1 (the load-shedding switch), its batches applied by the reconciler.
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('site', ?)", site.siteId);
      sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('cycle_end', ?)",
        String(Date.now() - H),
      );
    });
    const ctx = createExecutionContext();
    await worker.fetch(
      beacon(site, visit({ anonymousId: 'df' }, 'rd')),
      { ...env, DEFER_APPLY: '1' },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    const applied = Date.now();
    expect(await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000)).toBe(1);
    await settle(site);
    expect(await storedIds(site.siteId)).toEqual(['rd-m1', 'rd-m2']);
    // The apply path's cycle records its end too: a recovery starts from it (less its slack).
    const mark = await runInDurableObject(stub, (_instance, state) =>
      Number(
        state.storage.sql
          .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'cycle_end'")
          .one().value,
      ),
    );
    expect(mark).toBeGreaterThanOrEqual(applied);

    // The switch is off again; a beacon is taken and the instance is lost before its alarm.
    await ingest(site, visit({ anonymousId: 'lv' }, 'rl'));
    await evictDurableObject(stub);
    await settle(site);
    expect(await storedIds(site.siteId)).toEqual(['rd-m1', 'rd-m2', 'rl-m1', 'rl-m2']);
    // The recovery copies again what was taken since that mark less a minute of slack (here the
    // applied batch too, seconds old): each event is still read once.
    expect(await packedCopies(site.siteId)).toBeLessThanOrEqual(6);
  });
});

describe('an erasure while a batch of the person waits as pending (DEFER_APPLY)', () => {
  it('leaves nothing of the person that the reconciler can bring back', async () => {
    const site = await seedSite('r7b-pending-erase', ['view', 'cart']);
    await ingest(site, { batch: [track('view', { userId: 'pp' }, 'rp-m1', T(0))] });
    await settle(site);
    // The load-shedding switch is on: the person's next event is acknowledged (200) and
    // recorded in D1 with the whole event, for the reconciler.
    const ctx = createExecutionContext();
    const deferred = await worker.fetch(
      beacon(site, { batch: [track('cart', { userId: 'pp' }, 'rp-m2', T(1))] }),
      { ...env, DEFER_APPLY: '1' },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(await deferred.json()).toMatchObject({ accepted: 1 });

    // The person asks to be erased (docs/API.md: from D1 events and the SiteState object).
    expect((await erase(site, 'pp')).status).toBe(200);
    const held = await env.DB.prepare(
      'SELECT COUNT(*) AS n FROM batches WHERE site_id = ? AND instr(events, \'"pp"\') > 0',
    )
      .bind(site.siteId)
      .first<{ n: number }>();
    expect.soft(held?.n).toBe(0);

    // The cron's reconciler runs a minute later.
    await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000);
    await settle(site);
    expect(await copiesOfUser(site.siteId, 'pp')).toBe(0);
    expect((await stateOf(site.siteId).stats()).events).toBe(0);
  });
});

describe('held (tried, no finding)', () => {
  it('erases every copy when an erasure meets a cycle that commits, then fails', async () => {
    const site = await seedSite('r7b-held-erase', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await ingest(site, visit({ userId: 'gone' }, 'hg'));
    await ingest(site, visit({ userId: 'stays' }, 'hs'));
    // The cycle's D1 batch commits and then reports a timeout; the erasure arrives meanwhile.
    await runInDurableObject(stub, (instance) => {
      const object = instance as unknown as { env: Env };
      object.env = { ...object.env, DB: faultyDb(object.env.DB, { failBatchesAfter: 1 }) };
    });
    const [, erased] = await Promise.all([runDurableObjectAlarm(stub), erase(site, 'gone')]);
    expect([200, 500]).toContain(erased.status);
    if (erased.status !== 200) expect((await erase(site, 'gone')).status).toBe(200);
    await settle(site);
    expect(await copiesOfUser(site.siteId, 'gone')).toBe(0);
    expect(await storedIds(site.siteId)).toEqual(['hs-m1', 'hs-m2']);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
  });

  it("copies a goal edit's flush before the alarm", async () => {
    const site = await seedSite('r7b-held-goal', ['view', 'cart']);
    await ingest(site, visit({ anonymousId: 'ge' }, 'hq'));
    // What a goal edit runs (in the edit's waitUntil), before the ingest's alarm fires.
    expect(await stateOf(site.siteId).goalsChanged(site.siteId)).toEqual({ people: 1 });
    expect(await storedIds(site.siteId)).toEqual(['hq-m1', 'hq-m2']);
  });
});
