/**
 * The early write cycle at the end of a burst (`quiet` in src/identity/site-state-do.ts), from the
 * session-11 review: it never starts a cycle during a failed cycle's backoff, and a cycle it starts
 * early in a successor instance still recovers what a lost predecessor took (docs/ARCHITECTURE.md,
 * ingest). Expected counts are worked out by hand from the events sent.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import type { Env } from '../../src/env';
import { segmentOf } from '../../src/funnel/segment';
import { faultyDb } from './faults';
import { counts, ingest, packedCopies, report, seedSite, settle, stateOf, track } from './helpers';

const T = (seconds: number) => new Date(Date.now() - 60_000 + seconds * 1000).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const alarmOf = (stub: ReturnType<typeof stateOf>) =>
  runInDurableObject(stub, (_instance, state) => state.storage.getAlarm());

const visitors = (n: number, prefix: string) => ({
  batch: Array.from({ length: n }, (_, i) =>
    track('view', { anonymousId: `${prefix}${i}` }, `${prefix}-m${i}`, T(0)),
  ),
});

describe('the early cycle at the end of a burst', () => {
  it('starts no cycle during a failed cycle backoff', async () => {
    const site = await seedSite('quiet-backoff', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    await runInDurableObject(stub, (instance) => {
      const object = instance as unknown as { env: Env };
      object.env = { ...object.env, DB: faultyDb(object.env.DB, { failBatchesBefore: 1_000 }) };
    });
    await ingest(site, visitors(600, 'bo1-'));
    // The cycle runs and fails: the alarm is set again for the backoff (1 s).
    await runDurableObjectAlarm(stub);
    const backoff = (await alarmOf(stub)) as number;
    expect(backoff).toBeGreaterThan(Date.now() + 500);
    // Another burst of 600 people ends: the backoff still stands.
    await ingest(site, visitors(600, 'bo2-'));
    await sleep(200);
    expect(await alarmOf(stub)).toBe(backoff);
  });

  it('recovers a lost instance when a burst in its successor starts the cycle early', async () => {
    const site = await seedSite('quiet-recover', ['view', 'cart']);
    const stub = stateOf(site.siteId);
    const now = Date.now();
    const seg = JSON.stringify(segmentOf(null));
    // A predecessor took `lost` (stored, its person marked only in its memory) and was lost with
    // its alarm still set; the last recorded cycle end is ten minutes old.
    await runInDurableObject(stub, async (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('site', ?)", site.siteId);
      sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('cycle_end', ?)",
        String(now - 600_000),
      );
      const rows: Array<[string, string, number]> = [
        ['lost-m1', 'view', Date.parse(T(0))],
        ['lost-m2', 'cart', Date.parse(T(1))],
      ];
      for (const [messageId, name, ts] of rows) {
        const raw = [messageId, 'track', name, 'lost', null, null, ts, null, null, null, {}];
        sql.exec(
          `INSERT INTO events
             (dev, message_id, anon, user, ts, type, name, props, seg, received, raw)
           VALUES ('lost', ?, 'lost', NULL, ?, 'track', ?, NULL, ?, ?, ?)`,
          messageId,
          ts,
          name,
          seg,
          now - 5_000,
          JSON.stringify(raw),
        );
      }
      await state.storage.setAlarm(now + 60_000);
    });
    await evictDurableObject(stub);
    // The successor takes a burst of 600 other new people: its cycle starts early (`quiet`).
    expect(await (await ingest(site, visitors(600, 'rc-'))).json()).toMatchObject({
      accepted: 600,
    });
    // The cycle starts before the pause ends (`quiet` moved the alarm), not at its end.
    const due = (await alarmOf(stub)) as number;
    let left: number | null = null;
    while (left === null && Date.now() < due + 3_000) {
      if ((await alarmOf(stub)) !== due) left = Date.now();
      else await sleep(5);
    }
    expect(left).not.toBeNull();
    expect(left as number).toBeLessThan(due);
    await settle(site);
    // The 600 viewed, and `lost` (taken by the lost instance) viewed and added to cart.
    expect(counts(await report(site, today(), tomorrow()))).toEqual([601, 1]);
    expect(await packedCopies(site.siteId)).toBe(602);
  });
});
