/**
 * The hand-over of an ingest request to its site object (docs/ARCHITECTURE.md, ingest): the
 * Worker answers once D1 and the object both hold the events, with no D1 batch record; the
 * object writes their progress from its alarm; and a write cycle lost with its instance (the
 * events stored in the object, the people marked only in the lost memory) is recovered by the
 * alarm from when each event was taken, bounded by the last recorded cycle end.
 */
import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  SELF,
} from 'cloudflare:test';
import type { Env } from '../../src/env';
import { segmentOf } from '../../src/funnel/segment';
import { flushPauseMs } from '../../src/identity/site-state-do';
import { reconcilePending, RECONCILE_AFTER_MS } from '../../src/ingest/reconcile';
import { faultyDb, fetchWithFaults } from './faults';
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

const T = (seconds: number) => new Date(Date.now() - 60_000 + seconds * 1000).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

/** When the site object's alarm is set to fire, or null when none is set. */
const alarmOf = (stub: ReturnType<typeof stateOf>) =>
  runInDurableObject(stub, (_instance, state) => state.storage.getAlarm());

/** Two events of one visitor who viewed and added to cart: [1, 1] on the goal (view, cart). */
const visit = (device: string, prefix: string) => ({
  batch: [
    track('view', { anonymousId: device }, `${prefix}-m1`, T(0)),
    track('cart', { anonymousId: device }, `${prefix}-m2`, T(1)),
  ],
});

describe('the flush pause', () => {
  it('is 1 s unless FLUSH_PAUSE_MS sets a whole number of ms up to a minute', () => {
    expect(flushPauseMs({})).toBe(1000);
    expect(flushPauseMs({ FLUSH_PAUSE_MS: '250' })).toBe(250);
    expect(flushPauseMs({ FLUSH_PAUSE_MS: ' 0 ' })).toBe(0);
    expect(flushPauseMs({ FLUSH_PAUSE_MS: '60000' })).toBe(60_000);
    for (const bad of ['', '-5', '1.5', '60001', 'soon']) {
      expect(flushPauseMs({ FLUSH_PAUSE_MS: bad })).toBe(1000);
    }
  });
});

/**
 * When the site object's alarm stops being `due` (moved, or fired and cleared), polled every 5 ms
 * until `until`; null if it never does.
 */
async function alarmLeft(stub: ReturnType<typeof stateOf>, due: number, until: number) {
  while (Date.now() < until) {
    if ((await alarmOf(stub)) !== due) return Date.now();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return null;
}

/** `n` new visitors' page views, one each. */
const visitors = (n: number, prefix: string) => ({
  batch: Array.from({ length: n }, (_, i) =>
    track('view', { anonymousId: `${prefix}${i}` }, `${prefix}-m${i}`, T(0)),
  ),
});

/** Every D1 batch of the object's instance fails (the one fault wrapper, on the real binding). */
const failD1Batches = (stub: ReturnType<typeof stateOf>) =>
  runInDurableObject(stub, (instance) => {
    const object = instance as unknown as { env: Env };
    object.env = { ...object.env, DB: faultyDb(object.env.DB, { failBatchesBefore: 1_000 }) };
  });

/**
 * What `receive` leaves in storage when its instance is lost before the alarm writes: the site,
 * a last recorded cycle end ten minutes before `now`, the events (device, message id, name, event
 * time, when taken) and the alarm, a minute on. The people are marked only in the lost memory.
 */
async function storeLostCycle(
  stub: ReturnType<typeof stateOf>,
  siteId: string,
  now: number,
  rows: ReadonlyArray<readonly [string, string, string, number, number]>,
) {
  const seg = JSON.stringify(segmentOf(null));
  await runInDurableObject(stub, async (_instance, state) => {
    const sql = state.storage.sql;
    sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('site', ?)", siteId);
    sql.exec(
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('cycle_end', ?)",
      String(now - 600_000),
    );
    for (const [device, messageId, name, ts, received] of rows) {
      const raw = [messageId, 'track', name, device, null, null, ts, null, null, null, {}];
      sql.exec(
        `INSERT INTO events
           (dev, message_id, anon, user, ts, type, name, props, seg, received, raw)
         VALUES (?, ?, ?, NULL, ?, 'track', ?, NULL, ?, ?, ?)`,
        device,
        messageId,
        device,
        ts,
        name,
        seg,
        received,
        JSON.stringify(raw),
      );
    }
    await state.storage.setAlarm(now + 60_000);
  });
}

describe('the end of a burst', () => {
  it("starts a full chunk's cycle once requests stop, not at the end of the pause", async () => {
    // Fewer people than a write chunk (500): the cycle waits out the pause (this suite's 250 ms).
    const small = await seedSite('quiet-small', ['view', 'cart']);
    await ingest(small, visitors(100, 'qs'));
    const smallDue = (await alarmOf(stateOf(small.siteId))) as number;
    expect(
      await alarmLeft(stateOf(small.siteId), smallDue, smallDue + 3000),
    ).toBeGreaterThanOrEqual(smallDue);
    // 600 people, then nothing: the cycle starts about 50 ms after the request, well before the
    // 250 ms pause ends.
    const site = await seedSite('quiet-burst', ['view', 'cart']);
    await ingest(site, visitors(600, 'qb'));
    const due = (await alarmOf(stateOf(site.siteId))) as number;
    const left = await alarmLeft(stateOf(site.siteId), due, due + 3000);
    expect(left).not.toBeNull();
    expect(left as number).toBeLessThan(due);
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([600, 0]);
  });

  it('starts no cycle during a failed cycle backoff', async () => {
    const site = await seedSite('quiet-backoff', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await failD1Batches(stub);
    await ingest(site, visitors(600, 'bo1-'));
    // The cycle runs and fails: the alarm is set again for the backoff (1 s).
    await runDurableObjectAlarm(stub);
    const backoff = (await alarmOf(stub)) as number;
    expect(backoff).toBeGreaterThan(Date.now() + 500);
    // Another burst of 600 people ends: the backoff still stands.
    await ingest(site, visitors(600, 'bo2-'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await alarmOf(stub)).toBe(backoff);
  });

  it('recovers a lost instance when a burst in its successor starts the cycle early', async () => {
    const site = await seedSite('quiet-recover', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    const now = Date.now();
    // A predecessor took `lost` and was lost with its alarm still set.
    await storeLostCycle(stub, site.siteId, now, [
      ['lost', 'lost-m1', 'view', Date.parse(T(0)), now - 5_000],
      ['lost', 'lost-m2', 'cart', Date.parse(T(1)), now - 5_000],
    ]);
    await evictDurableObject(stub);
    // The successor takes a burst of 600 other new people: its cycle starts early (`quiet`).
    expect(await (await ingest(site, visitors(600, 'rc-'))).json()).toMatchObject({
      accepted: 600,
    });
    // The cycle starts before the pause ends (`quiet` moved the alarm), not at its end.
    const due = (await alarmOf(stub)) as number;
    const left = await alarmLeft(stub, due, due + 3_000);
    expect(left).not.toBeNull();
    expect(left as number).toBeLessThan(due);
    await settle(site);
    // The 600 viewed, and `lost` (taken by the lost instance) viewed and added to cart.
    expect(counts(await report(site, today(), tomorrow()))).toEqual([601, 1]);
    expect(await packedCopies(site.siteId)).toBe(602);
  });
});

describe('ingest hand-over to the site object', () => {
  it('answers once the object holds the events, and writes no batch record', async () => {
    const site = await seedSite('handover', ['view', 'cart']);
    const res = await ingest(site, {
      batch: [
        track('view', { anonymousId: 'h1' }, 'h-m1', T(0)),
        track('cart', { anonymousId: 'h1' }, 'h-m2', T(1)),
        track('view', { anonymousId: 'h2' }, 'h-m3', T(2)),
      ],
    });
    const answered = Date.now();
    expect(await res.json()).toMatchObject({ accepted: 3, duplicates: 0 });
    // The write waits out the pause in force (this suite sets FLUSH_PAUSE_MS, vitest.config.ts):
    // the alarm is due about that long after the request, not before it.
    const due = (await alarmOf(stateOf(site.siteId))) as number;
    expect(due).toBeGreaterThanOrEqual(answered - 1000 + flushPauseMs(env));
    expect(due).toBeLessThanOrEqual(answered + flushPauseMs(env));
    // At the answer, before any waiting: the object already holds all three.
    expect((await stateOf(site.siteId).stats()).events).toBe(3);
    const records = await env.DB.prepare('SELECT COUNT(*) AS n FROM batches WHERE site_id = ?')
      .bind(site.siteId)
      .first<{ n: number }>();
    expect(records?.n).toBe(0);

    await settle(site);
    // h1 viewed and added to cart; h2 only viewed.
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);
  });

  it('recovers a write cycle lost with its instance, from the last cycle end', async () => {
    const site = await seedSite('handover-lost', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    const now = Date.now();
    const at = (seconds: number) => Date.parse(T(seconds));
    // What `receive` leaves in storage when its instance is lost before the alarm writes:
    // the events with when they were taken, and the alarm. The last cycle end was recorded
    // ten minutes ago. `old` was taken (and written) before it, beyond the recovery's slack of
    // one minute: the recovery must not recompute it. `lost1` and `lost2` came after it.
    await storeLostCycle(stub, site.siteId, now, [
      ['old', 'old-m1', 'view', at(0), now - 900_000],
      ['lost1', 'lost-m1', 'view', at(1), now - 5_000],
      ['lost1', 'lost-m2', 'cart', at(2), now - 5_000],
      ['lost2', 'lost-m3', 'view', at(3), now - 4_000],
    ]);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);

    // The alarm fires in an instance whose memory knows nothing of these events.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    // lost1 viewed and added to cart, lost2 viewed; `old` was not recomputed (its progress
    // was written by the cycle that ended before the mark, so the recovery leaves it alone).
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);
    // Nor copied again: the lost cycle's events are now in D1's packs, `old` was before.
    expect(await storedIds(site.siteId)).toEqual(['lost-m1', 'lost-m2', 'lost-m3']);
  });

  it('recovers a cycle whose instance is evicted before its alarm', async () => {
    const site = await seedSite('handover-evicted', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    expect(await (await ingest(site, visit('ev', 'he'))).json()).toMatchObject({ accepted: 2 });
    // Still set: its cycle has not run yet (else this test would prove nothing).
    expect(await alarmOf(stub)).not.toBeNull();
    await evictDurableObject(stub);
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    expect(await storedIds(site.siteId)).toEqual(['he-m1', 'he-m2']);
  });

  it('sets its alarm again when a cycle fails, so a later instance still recovers it', async () => {
    const site = await seedSite('handover-failing', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await failD1Batches(stub);
    expect(await (await ingest(site, visit('fl', 'hf'))).json()).toMatchObject({ accepted: 2 });
    // The cycle runs and fails: the alarm handler does not throw (the runtime would give up on
    // an alarm after a few throws) and sets the alarm again.
    await runDurableObjectAlarm(stub);
    expect(await alarmOf(stub)).not.toBeNull();
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);
    expect(await storedIds(site.siteId)).toEqual([]);
    // The instance goes (with its memory and its failing D1); the next one recovers the cycle.
    await evictDurableObject(stub);
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    expect(await storedIds(site.siteId)).toEqual(['hf-m1', 'hf-m2']);
  });

  it('answers a beacon while D1 is down, and copies and counts it once D1 is back', async () => {
    const site = await seedSite('handover-d1-down', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    // The object's D1 writes fail for one cycle (its copy and its progress), the Worker's too:
    // the beacon path writes nothing to D1 when nothing in it is refused.
    await runInDurableObject(stub, (instance) => {
      const object = instance as unknown as { env: Env; failing?: D1Database };
      object.env = { ...object.env, DB: faultyDb(object.env.DB, { failBatchesBefore: 1 }) };
    });
    const res = await fetchWithFaults(beacon(site, visit('dd', 'hd')), { failBatchesBefore: 10 });
    expect(await res.json()).toMatchObject({ accepted: 2, duplicates: 0 });
    await runDurableObjectAlarm(stub); // fails: D1 is down for this cycle
    expect(await storedIds(site.siteId)).toEqual([]);
    await settle(site); // the alarm set again runs the cycle with D1 back
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    expect(await storedIds(site.siteId)).toEqual(['hd-m1', 'hd-m2']);
    // Each copied once: the failed cycle's batch wrote nothing.
    expect(await packedCopies(site.siteId)).toBe(2);
  });

  it('takes a retry it already holds without marking anyone or setting its alarm', async () => {
    const site = await seedSite('handover-retry', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await ingest(site, visit('rt', 'hr'));
    await settle(site);
    const retried = await ingest(site, visit('rt', 'hr'));
    expect(await retried.json()).toMatchObject({ accepted: 0, duplicates: 2 });
    expect(await alarmOf(stub)).toBeNull();
    expect(await stub.pending()).toBe(0);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
  });

  it("erases every D1 copy of a person's events, and keeps a re-send taken after", async () => {
    const site = await seedSite('handover-erase', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await ingest(site, visit('er', 'hx'));
    await ingest(site, visit('other', 'ho'));
    await settle(site);
    expect(await storedIds(site.siteId)).toEqual(['ho-m1', 'ho-m2', 'hx-m1', 'hx-m2']);
    // The object erases, then removes D1's copies in its own write order before it answers.
    const record = await stub.personRecord(site.siteId, { anonymousId: 'er' }, true);
    expect(record?.erasedEvents).toBe(2);
    expect(await storedIds(site.siteId)).toEqual(['ho-m1', 'ho-m2']);
    // Sent again after the erasure: new to the object, copied and counted again.
    const again = await ingest(site, visit('er', 'hx'));
    expect(await again.json()).toMatchObject({ accepted: 2, duplicates: 0 });
    await settle(site);
    expect(await storedIds(site.siteId)).toEqual(['ho-m1', 'ho-m2', 'hx-m1', 'hx-m2']);
    expect(await packedCopies(site.siteId)).toBe(4);
  });

  it('leaves no D1 copy of an event erased before its cycle ran', async () => {
    const site = await seedSite('handover-erase-early', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await ingest(site, visit('ee', 'hy'));
    // Taken, its cycle not run yet: the erasure copies what was taken first (a person's
    // record reads D1 as complete), then erases the copies.
    expect(await alarmOf(stub)).not.toBeNull();
    const erased = await SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/people/ee`, {
      method: 'DELETE',
      headers: ADMIN,
    });
    expect(await erased.json()).toMatchObject({ deleted: { events: 2, stateEvents: 2 } });
    await settle(site);
    expect(await storedIds(site.siteId)).toEqual([]);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);
  });

  it('records an import the object did not take, with its events, for the reconciler', async () => {
    const site = await seedSite('handover-import', ['view', 'cart']);
    const old = (second: number) => new Date(Date.UTC(2025, 2, 3, 10, 0, second)).toISOString();
    const body = {
      batch: [
        track('view', { anonymousId: 'im' }, 'hi-m1', old(0)),
        track('cart', { anonymousId: 'im' }, 'hi-m2', old(1)),
      ],
    };
    const request = new Request(`https://goalstep.test/v1/import?site=${site.siteId}`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const res = await fetchWithFaults(request, { failObject: true });
    expect(await res.json()).toMatchObject({ accepted: 2 });
    expect(await storedIds(site.siteId)).toEqual([]);
    const later = Date.now() + RECONCILE_AFTER_MS + 1_000;
    expect(await reconcilePending(env, later)).toBe(1);
    await settle(site);
    expect(counts(await report(site, '2025-03-03', '2025-03-04'))).toEqual([1, 1]);
    expect(await storedIds(site.siteId)).toEqual(['hi-m1', 'hi-m2']);
    const record = await env.DB.prepare('SELECT COUNT(*) AS n FROM batches WHERE site_id = ?')
      .bind(site.siteId)
      .first<{ n: number }>();
    expect(record?.n).toBe(0);
  });
});
