/**
 * Migrations 0014, 0016 and 0017 run on a database that already holds attempts, events and
 * rollups (the tests' setup applies them to empty tables only): the stored rows end up listed,
 * packed or dropped. Expected rows by hand.
 */
import { env } from 'cloudflare:test';
import { toEngineGoal } from '../../src/funnel/definition';
import { writeProgress } from '../../src/funnel/progress-store';
import { eventsByTime } from '../../src/ingest/event-packs';
import { reconcilePending } from '../../src/ingest/reconcile';
import { queryCountedAttempts } from '../../src/report/funnel-query';
import { settle, viewer } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 5, 2, 8);
/** D1's documented cap on a value (developers.cloudflare.com/d1/platform/limits). */
const D1_MAX_VALUE_BYTES = 2_000_000;

async function runMigration(name: string) {
  const migration = env.TEST_MIGRATIONS.find((m) => m.name === name);
  expect(migration).toBeDefined();
  await env.DB.batch((migration?.queries ?? []).map((sql) => env.DB.prepare(sql)));
}

/** The tables as 0015 left them (the tests' setup applies 0016 to empty tables only). */
async function tablesBefore0016() {
  await env.DB.batch(
    [
      'DROP VIEW events',
      'DROP TABLE event_packs',
      'ALTER TABLE batches DROP COLUMN events',
      `CREATE TABLE events (site_id text NOT NULL, message_id text NOT NULL, type text NOT NULL,
         event text, anonymous_id text, user_id text, previous_id text, ts integer NOT NULL,
         client_ts text, received_at integer NOT NULL, properties text, traits text,
         context text, batch_id text NOT NULL, PRIMARY KEY (site_id, message_id)) WITHOUT ROWID`,
      `CREATE TABLE event_hours (site_id text NOT NULL, hour integer NOT NULL,
         batch_id text NOT NULL, ids text NOT NULL, PRIMARY KEY (site_id, hour, batch_id))
         WITHOUT ROWID`,
    ].map((sql) => env.DB.prepare(sql)),
  );
}

describe('migration 0016 on stored events', () => {
  it('packs the stored events by site, hour and request, and reads them back', async () => {
    await tablesBefore0016();
    const insert = env.DB.prepare(
      `INSERT INTO events (site_id, message_id, type, event, anonymous_id, ts, received_at,
         properties, context, batch_id) VALUES (?, ?, 'track', 'view', ?, ?, ?, ?, '{}', ?)`,
    );
    await env.DB.batch([
      insert.bind('m16', 'e1', 'd1', T, T, '{"plan":"pro"}', 'b1'),
      insert.bind('m16', 'e2', 'd1', T + H - 1, T, null, 'b1'),
      insert.bind('m16', 'e3', null, T + H, T, null, 'b1'),
      insert.bind('m16', 'e4', 'd2', T + 5, T + 9, null, 'b2'),
      insert.bind('m16-other', 'e1', 'd1', T, T, null, 'b1'),
    ]);

    await runMigration('0016_store_once.sql');

    const { results } = await env.DB.prepare(
      `SELECT site_id, hour, batch_id, received_at,
         (SELECT json_group_array(j.value ->> 0) FROM json_each(events) j) AS ids
       FROM event_packs ORDER BY site_id, hour, batch_id`,
    ).all<{ site_id: string; hour: number; batch_id: string; received_at: number; ids: string }>();
    expect(
      results.map((r) => [
        r.site_id,
        (r.hour - T) / H,
        r.batch_id,
        r.received_at - T,
        JSON.parse(r.ids).sort(),
      ]),
    ).toEqual([
      ['m16', 0, 'b1', 0, ['e1', 'e2']],
      ['m16', 0, 'b2', 9, ['e4']],
      ['m16', 1, 'b1', 0, ['e3']],
      ['m16-other', 0, 'b1', 0, ['e1']],
    ]);
    const read = await env.DB.prepare(
      `SELECT message_id, anonymous_id, properties, received_at
       FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events ORDER BY message_id`,
    )
      .bind('m16', T, T + 2 * H)
      .all();
    expect(read.results).toEqual([
      { message_id: 'e1', anonymous_id: 'd1', properties: '{"plan":"pro"}', received_at: T },
      { message_id: 'e2', anonymous_id: 'd1', properties: null, received_at: T },
      { message_id: 'e3', anonymous_id: null, properties: null, received_at: T },
      { message_id: 'e4', anonymous_id: 'd2', properties: null, received_at: T + 9 },
    ]);
    // The view reads the same rows, every column as the table held it.
    const view = await env.DB.prepare(
      "SELECT * FROM events WHERE site_id = 'm16' AND message_id = 'e4'",
    ).first();
    expect(view).toMatchObject({ type: 'track', event: 'view', ts: T + 5, context: '{}' });
    const gone = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE name IN ('event_hours', 'events_site_user')",
    ).all();
    expect(gone.results).toEqual([]);
  });
});

describe('migration 0014 on stored attempts', () => {
  const goal = (version: number) =>
    toEngineGoal(
      { id: 'm14', version, name: 'M14' },
      { steps: [{ event: 'view' }, { event: 'buy' }], window: '7d', mode: 'ordered' },
    );
  const person = (id: string, version: number, times: number[]) => viewer(goal(version), id, times);

  it('lists every stored attempt key by version and hour of entry', async () => {
    // Version 1: a:p viewing in hours 0 and 1, a:q in hour 0; version 2: a:q in hour 1. The
    // expected listing is derived from the keys stored, whatever attempts the engine makes.
    await writeProgress(env.DB, 'm14', [goal(1)], [person('a:p', 1, [T, T + H + 1])]);
    await writeProgress(env.DB, 'm14', [goal(1)], [person('a:q', 1, [T + 7])]);
    await writeProgress(env.DB, 'm14', [goal(2)], [person('a:q', 2, [T + H])]);
    const { results: stored } = await env.DB.prepare(
      `SELECT version, person_id, t1 FROM attempts WHERE site_id = 'm14'
       ORDER BY version, person_id, t1`,
    ).all<{ version: number; person_id: string; t1: number }>();
    await env.DB.batch(
      [
        'DROP TABLE attempt_hours',
        'CREATE INDEX attempts_range ON attempts (site_id, goal_id, version, t1)',
      ].map((s) => env.DB.prepare(s)),
    );

    await runMigration('0014_attempt_hours.sql');

    // Worked out from the stored keys: one listing per (version, hour) of their t1.
    const expected = new Map<string, Set<string>>();
    for (const r of stored) {
      const key = `${r.version}:${(Math.floor(r.t1 / H) * H - T) / H}`;
      expected.set(key, (expected.get(key) ?? new Set()).add(r.person_id));
    }
    const { results } = await env.DB.prepare(
      `SELECT version, hour, seq, persons FROM attempt_hours WHERE site_id = 'm14'
       ORDER BY version, hour, seq`,
    ).all<{ version: number; hour: number; seq: number; persons: string }>();
    expect(
      new Map(
        results.map((r) => [
          `${r.version}:${(r.hour - T) / H}`,
          new Set(JSON.parse(r.persons) as string[]),
        ]),
      ),
    ).toEqual(expected);
    expect(results.every((r) => r.seq === 0)).toBe(true);
    const q = { siteId: 'm14', goalId: 'm14', steps: 2 };
    const people = async (version: number, from: number, to: number) =>
      (await queryCountedAttempts(env.DB, { ...q, version, from, to }))
        .map((a) => String(a.personId))
        .sort();
    expect(await people(1, T, T + H)).toEqual(['a:p', 'a:q']);
    expect(await people(2, T, T + 2 * H)).toEqual(['a:q']);
  });
});

describe('migration 0016 on a pending batch of 1,000 events with a shared context', () => {
  it('writes packs and pending records of at most 2 MB each', async () => {
    await tablesBefore0016();
    // One request: 1,000 events within a second, each stored with the batch's context.
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
       INSERT INTO events (site_id, message_id, type, event, anonymous_id, ts, received_at,
         context, batch_id)
       SELECT 'm16big', 'e' || i, 'track', 'view', 'd', ?1 + i, ?1, json_object('note', ?2), 'b1'
       FROM n`,
    )
      .bind(T, 'x'.repeat(2500))
      .run();
    // The site itself (the admin routes that `settle` polls answer 404 for a site that is not).
    await env.DB.prepare(
      "INSERT INTO sites (id, name, created_at) VALUES ('m16big', 'Migrated', ?)",
    )
      .bind(T)
      .run();
    // Its record is still pending (the object was unreachable, or DEFER_APPLY was on).
    await env.DB.prepare(
      `INSERT INTO batches (id, site_id, received_at, message_ids)
       VALUES ('b1', 'm16big', ?, (SELECT json_group_array(message_id) FROM events))`,
    )
      .bind(T)
      .run();

    await runMigration('0016_store_once.sql');

    const packs = await env.DB.prepare(
      'SELECT MAX(length(CAST(events AS BLOB))) AS bytes FROM event_packs',
    ).first<{ bytes: number }>();
    expect(packs?.bytes).toBeLessThanOrEqual(D1_MAX_VALUE_BYTES);
    const parts = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM event_packs WHERE site_id = 'm16big'",
    ).first<{ n: number }>();
    expect(parts?.n).toBeGreaterThan(1);
    // The record keeps its ids only (no 2 MB value written): the reconciler reads its events
    // from the packs, and the object takes all 1,000.
    const record = await env.DB.prepare("SELECT events FROM batches WHERE id = 'b1'").first();
    expect(record).toEqual({ events: null });
    expect(await reconcilePending(env, T + 86_400_000)).toBe(1);
    await settle({ siteId: 'm16big' });
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName('m16big'));
    expect((await stub.stats()).events).toBe(1000);
    const view = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM events WHERE site_id = 'm16big'",
    ).first<{ n: number }>();
    expect(view?.n).toBe(1000);
    expect(await env.DB.prepare("SELECT id FROM batches WHERE id = 'b1'").first()).toBeNull();
  });
});

describe('migration 0017 on stored rollups', () => {
  it('drops the rollup rows of "no value" in breakdown dims, and no other row', async () => {
    const key = `'m17', 'g', 1`;
    const row = (dim: string, value: string, n: number) =>
      `(${key}, '${dim}', 10, -1, 1000000000, -1, '${value}', ${n})`;
    const bucket = (dim: string, value: string) =>
      `(${key}, '${dim}', 10, -1, 1000000000, '${value}', 2, 7, 1)`;
    await env.DB.batch(
      [
        `INSERT INTO rollups (site_id, goal_id, version, dim, hour, prev_hour, next_hour,
           open_hour, value, n) VALUES ${[
             row('', '', 5),
             row('device', 'mobile', 3),
             row('device', '', 2),
             row('country', '(none)', 1),
             row('country', '', 4),
           ].join(', ')}`,
        `INSERT INTO rollup_durations (site_id, goal_id, version, dim, hour, prev_hour,
           next_hour, value, step, bucket, n) VALUES ${[
             bucket('', ''),
             bucket('device', 'mobile'),
             bucket('device', ''),
           ].join(', ')}`,
      ].map((sql) => env.DB.prepare(sql)),
    );

    await runMigration('0017_rollups_without_none.sql');

    const [rollups, durations] = await env.DB.batch<{ dim: string; value: string }>(
      ['rollups', 'rollup_durations'].map((table) =>
        env.DB.prepare(`SELECT dim, value FROM ${table} WHERE site_id = 'm17' ORDER BY 1, 2`),
      ),
    );
    expect(rollups?.results).toEqual([
      { dim: '', value: '' },
      { dim: 'country', value: '(none)' },
      { dim: 'device', value: 'mobile' },
    ]);
    expect(durations?.results).toEqual([
      { dim: '', value: '' },
      { dim: 'device', value: 'mobile' },
    ]);
  });
});
