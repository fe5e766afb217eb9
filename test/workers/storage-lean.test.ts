/**
 * Lean storage (migration 0009, docs/BENCHMARKS.md cost): what one event costs in billed rows
 * written, worked out by hand from the rule D1 and object SQLite bill by (every b-tree entry
 * written is a row: a table row, and one per index the row enters), and the site object's
 * one-time move of an older events table to the lean one.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import { toEngineGoal } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { writeProgress } from '../../src/funnel/progress-store';
import { queryCountedAttempts } from '../../src/report/funnel-query';
import { foldLogStatements, ROLLUP_DIMS } from '../../src/funnel/rollups';
import { segmentOf } from '../../src/funnel/segment';
import { IdentityStore } from '../../src/identity/identity-store';
import { createDirtyTable, createEventsTable } from '../../src/identity/site-state-do';
import { mirrorStatements, packEntry } from '../../src/ingest/event-packs';
import { storeBatch } from '../../src/ingest/event-store';
import type { StoredEvent } from '../../src/ingest/normalize';
import { counting } from './helpers';

const event = (messageId: string, ids: { anonymousId?: string; userId?: string }) =>
  ({
    messageId,
    type: 'track',
    event: 'page_viewed',
    anonymousId: ids.anonymousId ?? null,
    userId: ids.userId ?? null,
    previousId: null,
    ts: Date.UTC(2025, 2, 3, 10),
    clientTs: null,
    properties: null,
    traits: null,
    context: {},
  }) satisfies StoredEvent & { messageId: string };

/** The sum of `rows_written` of every statement of one `storeBatch` call. */
async function rowsWritten(batchId: string, events: ReturnType<typeof event>[], pending = false) {
  const { db, written } = counting(env.DB);
  await storeBatch(db, {
    siteId: 'lean',
    batchId,
    pending,
    receivedAt: Date.now(),
    events,
    rejected: [],
    filtered: [],
  });
  return written();
}

describe('lean storage', () => {
  it('bills a beacon no D1 row, and a deferred one its record', async () => {
    // Valid events reach D1 through the site object's write cycle (below), not the request.
    const anonymous = ['a1', 'a2', 'a3'].map((id) => event(`lean-${id}`, { anonymousId: id }));
    expect(await rowsWritten('lean-b1', anonymous)).toBe(0);
    // Deferred (`DEFER_APPLY`): the batch record with its events (WITHOUT ROWID, no index): 1.
    expect(await rowsWritten('lean-b4', anonymous, true)).toBe(1);
  });

  it("bills a write cycle's copy one D1 row per hour of event time and chunk", async () => {
    const mirrored = async (events: Array<StoredEvent & { messageId: string }>) => {
      const { db, written } = counting(env.DB);
      const raw = events.map((e) => ({ raw: JSON.stringify(packEntry(e)), at: 1, ts: e.ts }));
      await db.batch(mirrorStatements(db, 'lean-mirror', raw));
      return written();
    };
    // Three anonymous events and an identified one in one hour: one `event_packs` row (its key
    // is the row: no index, no user or device index in D1).
    const hour = ['m1', 'm2', 'm3'].map((id) => event(`lean-${id}`, { anonymousId: id }));
    const identified = event('lean-u1', { anonymousId: 'm1', userId: 'ann' });
    expect(await mirrored([...hour, identified])).toBe(1);
    // Two hours of event time (two events at 10:00, one at 11:00): 2 rows.
    const later = { ...event('lean-h3', { anonymousId: 'h3' }), ts: Date.UTC(2025, 2, 3, 11) };
    expect(
      await mirrored([event('lean-h1', { anonymousId: 'h1' }), event('lean-h2', {}), later]),
    ).toBe(2);
    // Past 600,000 characters of entries a chunk closes: 3 events of 250 kB, 2 chunks (2 + 1).
    const big = ['b1', 'b2', 'b3'].map((id) => ({
      ...event(`lean-${id}`, { anonymousId: id }),
      properties: { text: 'x'.repeat(250_000) },
    }));
    expect(await mirrored(big)).toBe(2);
  });

  it('bills a refused or filtered event 1 row, and 1 more with a message id', async () => {
    const refused = (messageId: string | null) => ({
      index: 0,
      code: 'missing_identity',
      path: '',
      message: 'no id',
      raw: { messageId },
      messageId,
    });
    const bot = (messageId: string) => ({
      code: 'bot',
      rule: 'bot',
      raw: { messageId },
      messageId,
    });
    const file = async (
      rejected: ReturnType<typeof refused>[],
      filtered: ReturnType<typeof bot>[],
    ) => {
      const { db, written, read } = counting(env.DB);
      await storeBatch(db, {
        siteId: 'lean-refused',
        batchId: 'lean-r',
        receivedAt: Date.now(),
        events: [],
        rejected,
        filtered,
      });
      return { written: written(), read: read() };
    };
    // `rejected_events` is keyed by (site, received time, id): the row is the key, no rowid entry
    // and no `sqlite_sequence` row (the id is not AUTOINCREMENT's). The message-id index is
    // partial: only a row with a message id enters it, for the retry dedupe. So a filtered event
    // (it always has a message id): its row + its `rejected_site_message` entry = 2 (4 before:
    // the rowid row, two index entries and the sequence row).
    expect((await file([], [bot('lean-f1')])).written).toBe(2);
    // A refused event with a message id: 2; one without: its row alone, 1.
    expect((await file([refused('lean-r1')], [])).written).toBe(2);
    expect((await file([refused(null)], [])).written).toBe(1);
    // A retry of both with ids files nothing; the one without an id is filed again: 1.
    expect((await file([refused('lean-r1'), refused(null)], [bot('lean-f1')])).written).toBe(1);

    // The retry check finds the message id by its index, not by reading the site's rows: with
    // 300 more filtered rows on the site, a retry reads as few rows as with none (a scan of the
    // site would read the 300).
    const retry = () => file([], [bot('lean-f1')]);
    const before = (await retry()).read;
    await file(
      [],
      Array.from({ length: 300 }, (_, i) => bot(`lean-many-${i}`)),
    );
    expect((await retry()).read).toBeLessThanOrEqual(before + 2);
  });

  it('bills a lone new person 3 rows and shares the rollup rows of a fold', async () => {
    const goal = toEngineGoal(
      { id: 'lean-goal', version: 1, name: 'Lean' },
      { steps: [{ event: 'view' }, { event: 'buy' }], window: '7d', mode: 'ordered' },
    );
    const segment = {
      utmSource: 'google',
      utmMedium: 'cpc',
      utmCampaign: null,
      referrerDomain: null,
      device: 'desktop',
      browser: 'Chrome',
      os: 'Windows',
      country: 'US',
    };
    const at = Date.UTC(2025, 2, 3, 10);
    const person = (n: number, bought = false) => {
      const view = { messageId: `lean-v${n}`, ts: at + n, type: 'track', event: 'view' };
      const buy = { messageId: `lean-b${n}`, ts: at + n + 1, type: 'track', event: 'buy' };
      const events = bought ? [view, buy] : [view];
      const attempts = computeAttempts(
        events.map((e) => ({ ...e, properties: null })),
        goal,
      );
      const withSegment = attempts.map((a) => ({ ...a, segment }));
      return { personId: `a:lean-${n}`, attempts: new Map([['lean-goal#1', withSegment]]) };
    };
    const { db, written } = counting(env.DB);
    const fold = () => db.batch(foldLogStatements(db, 'lean'));

    await writeProgress(db, 'lean', [goal], [person(1)]);
    // `attempts`: its row = 1; the write's listing of the new key in `attempt_hours` (one row
    // for its goal version and entry hour) = 1; the write's `rollup_log` row = 1.
    expect(written()).toBe(3);
    await fold();
    // `rollups` (WITHOUT ROWID): one new row for the total and one per segment column with a
    // value (utm_campaign and referrer_domain have none, and "no value" keeps no rows) = 7,
    // and the log row deleted = 1. No step after the first was reached, so no
    // `rollup_durations` row.
    expect(ROLLUP_DIMS).toHaveLength(9);
    expect(written()).toBe(3 + 8);

    // Two more people of the same hour and segment, in two writes: 3 rows each. One fold
    // updates the same 7 rollup rows once for both and deletes 2 log rows: 9, where moving the
    // rollups in each write cost 7 each.
    await writeProgress(db, 'lean', [goal], [person(2)]);
    await writeProgress(db, 'lean', [goal], [person(3)]);
    expect(written()).toBe(11 + 6);
    await fold();
    expect(written()).toBe(17 + 9);
    const total = await env.DB.prepare(
      "SELECT n, c1 FROM rollups WHERE site_id = 'lean' AND dim = '' AND hour = ?",
    )
      .bind(at / 3_600_000)
      .first();
    expect(total).toEqual({ n: 3, c1: 3 });

    // Three new people of one hour in one write: their rows = 3, one listing row for the three
    // keys = 1, the log row = 1: 5 (an index entry per attempt made it 7).
    await writeProgress(db, 'lean', [goal], [person(4), person(5), person(6)]);
    expect(written()).toBe(26 + 5);
    // Person 1 reaches the second step: the same key (same entry), so the row is updated = 1,
    // nothing new is listed, and the log row = 1.
    await writeProgress(db, 'lean', [goal], [person(1, true)]);
    expect(written()).toBe(31 + 2);
    const { results } = await env.DB.prepare(
      "SELECT hour, persons FROM attempt_hours WHERE site_id = 'lean' ORDER BY seq",
    ).all<{ hour: number; persons: string }>();
    expect(new Set(results.map((r) => r.hour))).toEqual(new Set([at]));
    expect(results.map((r) => (JSON.parse(r.persons) as string[]).sort()).sort()).toEqual([
      ['a:lean-1'],
      ['a:lean-2'],
      ['a:lean-3'],
      ['a:lean-4', 'a:lean-5', 'a:lean-6'],
    ]);
  });

  it("reads as many rows to write one person whatever the site's other rows", async () => {
    const goal = toEngineGoal(
      { id: 'lean-reads', version: 1, name: 'Reads' },
      { steps: [{ event: 'view' }, { event: 'buy' }], window: '7d', mode: 'ordered' },
    );
    const segment = segmentOf(null); // a visitor without context: no segment values
    const at = Date.UTC(2025, 2, 3, 10);
    const person = (id: string, events: string[]) => {
      const list = events.map((event, i) => ({
        messageId: `${id}-${i}`,
        ts: at + i * 60_000,
        type: 'track',
        event,
        properties: null,
      }));
      const attempts = computeAttempts(list, goal).map((a) => ({ ...a, segment }));
      return { personId: id, attempts: new Map([['lean-reads#1', attempts]]) };
    };
    // Site "big" holds 1,000 other people first; "small" none.
    const others = Array.from({ length: 1000 }, (_, i) => person(`a:o${i}`, ['view']));
    await writeProgress(env.DB, 'lean-big', [goal], others, { fold: true });
    const reads = async (site: string) => {
      const { db, read } = counting(env.DB);
      await writeProgress(db, site, [goal], [person('a:me', ['view'])]);
      await writeProgress(db, site, [goal], [person('a:me', ['view', 'buy'])]);
      return read();
    };
    // Every row a write touches is found by its key: the 1,000 other people cost no reads (a
    // scan of the site's rows would add at least 1,000; a key search may step on a neighbour).
    const small = await reads('lean-small');
    expect(await reads('lean-big')).toBeLessThanOrEqual(small + 10);
  });

  it("reads a range's people by their listing, whatever the version's other rows", async () => {
    const goal = toEngineGoal(
      { id: 'lean-range', version: 1, name: 'Range' },
      { steps: [{ event: 'view' }, { event: 'buy' }], window: '7d', mode: 'ordered' },
    );
    const segment = segmentOf(null);
    const at = Date.UTC(2025, 2, 3, 10);
    const person = (id: string, ts: number) => {
      const view = { messageId: `${id}-v`, ts, type: 'track', event: 'view', properties: null };
      const attempts = computeAttempts([view], goal).map((a) => ({ ...a, segment }));
      return { personId: id, attempts: new Map([['lean-range#1', attempts]]) };
    };
    // Both sites: three people entering at 10:xx. Site "big" also 1,000 people a day earlier.
    const three = ['a:r1', 'a:r2', 'a:r3'].map((id, i) => person(id, at + i * 60_000));
    const earlier = Array.from({ length: 1000 }, (_, i) => person(`a:e${i}`, at - 86_400_000 + i));
    await writeProgress(env.DB, 'lean-range-big', [goal], earlier, { fold: true });
    const read = async (siteId: string) => {
      await writeProgress(env.DB, siteId, [goal], three, { fold: true });
      const { db, read: rowsRead } = counting(env.DB);
      const query = { siteId, goalId: 'lean-range', version: 1, steps: 2 };
      const found = await queryCountedAttempts(db, { ...query, from: at, to: at + 3_600_000 });
      return { people: found.length, rows: rowsRead() };
    };
    const small = await read('lean-range-small');
    const big = await read('lean-range-big');
    // The same three people, and about the same rows read: a scan of the version's rows (no
    // index by entry time) would read the 1,000 earlier people too.
    expect(small.people).toBe(3);
    expect(big.people).toBe(3);
    expect(big.rows).toBeLessThanOrEqual(small.rows + 10);
  });

  // The shapes objects were created with before: a rowid table, then one keyed by message id.
  const OLDER_TABLES = [
    `CREATE TABLE events (message_id TEXT PRIMARY KEY, anon TEXT, user TEXT,
      ts INTEGER NOT NULL, type TEXT NOT NULL, name TEXT, props TEXT, seg TEXT NOT NULL)`,
    `CREATE TABLE events (message_id TEXT PRIMARY KEY, anon TEXT, user TEXT,
      ts INTEGER NOT NULL, type TEXT NOT NULL, name TEXT, props TEXT, seg TEXT NOT NULL)
      WITHOUT ROWID`,
  ];

  it.each(OLDER_TABLES.map((ddl, i) => [i, ddl]))(
    "moves an object's older events table (%i) to the device-keyed one, keeping every event",
    async (i, ddl) => {
      const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName(`lean-upgrade-${i}`));
      await runInDurableObject(stub, (_instance, state) => {
        const sql = state.storage.sql;
        sql.exec('DROP TABLE events');
        sql.exec(ddl as string);
        sql.exec('CREATE INDEX events_anon ON events (anon)');
        sql.exec(
          `INSERT INTO events VALUES ('m1', 'dev-1', NULL, 1, 'track', 'view', NULL, '{}'),
            ('m2', 'dev-1', 'ann', 2, 'identify', NULL, '{"plan":"pro"}', '{}'),
            ('m3', NULL, 'ann', 3, 'track', 'buy', NULL, '{}')`,
        );

        createEventsTable(sql);
        createEventsTable(sql); // a second start finds the current table and leaves it alone

        const table = sql
          .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'events'")
          .one();
        expect(table.sql).toMatch(/PRIMARY KEY \(dev, message_id\)\) WITHOUT ROWID/);
        const indexes = sql
          .exec<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'",
          )
          .toArray()
          .map((r) => r.name);
        expect(indexes).toEqual(['events_user_set']);
        const rows = sql
          .exec('SELECT dev, message_id, anon, user, props FROM events ORDER BY message_id')
          .toArray();
        expect(rows).toEqual([
          { dev: 'dev-1', message_id: 'm1', anon: 'dev-1', user: null, props: null },
          { dev: 'dev-1', message_id: 'm2', anon: 'dev-1', user: 'ann', props: '{"plan":"pro"}' },
          { dev: '', message_id: 'm3', anon: null, user: 'ann', props: null },
        ]);
        // One row each, and a user index entry for the identified one: 1 + 2.
        const cursor = sql.exec(
          `INSERT INTO events (dev, message_id, anon, user, ts, type, name, props, seg)
           VALUES ('dev-2', 'm4', 'dev-2', NULL, 4, 'track', 'view', NULL, '{}'),
             ('dev-2', 'm5', 'dev-2', 'bob', 5, 'track', 'view', NULL, '{}')`,
        );
        expect(cursor.rowsWritten).toBe(3);
      });
    },
  );

  it('bills a new identity fact and a durable dirty mark one row each, plus indexes', async () => {
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName('lean-identity'));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      let written = 0;
      const counted = new Proxy(sql, {
        get(target, key) {
          if (key !== 'exec') return Reflect.get(target, key, target) as unknown;
          return (query: string, ...bindings: SqlStorageValue[]) => {
            const cursor = target.exec(query, ...bindings);
            written += cursor.rowsWritten;
            return cursor;
          };
        },
      });
      const identity = new IdentityStore(counted);
      written = 0;
      // A device's first identify of a new user: its `users` row (1) and its `links` row (1),
      // keyed by device and message id with no index = 2; with an index by device (schema 4)
      // it was 3, and rowid tables with a text key wrote 2 + 3 = 5.
      const fact = {
        messageId: 'li-1',
        ts: 1,
        type: 'identify',
        anonymousId: 'dev',
        userId: 'ann',
        previousId: null,
      };
      expect(identity.record(fact)).toBe(true);
      expect(written).toBe(2);

      // A durable dirty mark: one row in, one out (a rowid table with a text key: 2 and 2).
      createDirtyTable(sql);
      expect(
        sql.exec("INSERT OR REPLACE INTO dirty (key, seq) VALUES ('u:ann', 1)").rowsWritten,
      ).toBe(1);
      expect(sql.exec("DELETE FROM dirty WHERE key = 'u:ann' AND seq = 1").rowsWritten).toBe(1);
    });
  });

  it("moves an object's rowid dirty table to the lean one, keeping its marks", async () => {
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName('lean-dirty-upgrade'));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec('DROP TABLE dirty');
      sql.exec('CREATE TABLE dirty (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)');
      sql.exec("INSERT INTO dirty VALUES ('a:one', 3), ('u:two', 5)");
      createDirtyTable(sql);
      createDirtyTable(sql); // a second start finds the lean table and leaves it alone
      const table = sql
        .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'dirty'")
        .one();
      expect(table.sql).toMatch(/WITHOUT ROWID$/);
      expect(sql.exec('SELECT key, seq FROM dirty ORDER BY key').toArray()).toEqual([
        { key: 'a:one', seq: 3 },
        { key: 'u:two', seq: 5 },
      ]);
    });
  });
});
