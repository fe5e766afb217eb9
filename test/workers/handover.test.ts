/**
 * The hand-over of an ingest request to its site object (docs/ARCHITECTURE.md, ingest): the
 * Worker answers once D1 and the object both hold the events, with no D1 batch record; the
 * object writes their progress from its alarm; and a write cycle lost with its instance (the
 * events stored in the object, the people marked only in the lost memory) is recovered by the
 * alarm from when each event was taken, bounded by the last recorded cycle end.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { segmentOf } from '../../src/funnel/segment';
import { counts, ingest, report, seedSite, settle, track } from './helpers';

const T = (seconds: number) => new Date(Date.now() - 60_000 + seconds * 1000).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

const stateOf = (siteId: string) => env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));

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
    expect(await res.json()).toMatchObject({ accepted: 3, duplicates: 0 });
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
    const seg = JSON.stringify(segmentOf(null));
    // What `receive` leaves in storage when its instance is lost before the alarm writes:
    // the events with when they were taken, and the alarm. The last cycle end was recorded
    // ten minutes ago. `old` was taken (and written) before it, beyond the recovery's slack of
    // one minute: the recovery must not recompute it. `lost1` and `lost2` came after it.
    await runInDurableObject(stub, async (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('site', ?)", site.siteId);
      sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('cycle_end', ?)",
        String(now - 600_000),
      );
      const rows: Array<[string, string, string, number, number]> = [
        ['old', 'old-m1', 'view', at(0), now - 900_000],
        ['lost1', 'lost-m1', 'view', at(1), now - 5_000],
        ['lost1', 'lost-m2', 'cart', at(2), now - 5_000],
        ['lost2', 'lost-m3', 'view', at(3), now - 4_000],
      ];
      for (const [device, messageId, name, ts, received] of rows) {
        sql.exec(
          `INSERT INTO events (dev, message_id, anon, user, ts, type, name, props, seg, received)
           VALUES (?, ?, ?, NULL, ?, 'track', ?, NULL, ?, ?)`,
          device,
          messageId,
          device,
          ts,
          name,
          seg,
          received,
        );
      }
      await state.storage.setAlarm(now + 60_000);
    });
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);

    // The alarm fires in an instance whose memory knows nothing of these events.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    // lost1 viewed and added to cart, lost2 viewed; `old` was not recomputed (its progress
    // was written by the cycle that ended before the mark, so the recovery leaves it alone).
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);
  });
});
