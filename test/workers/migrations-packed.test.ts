/**
 * Migrations 0013 and 0014 run on a database that already holds events and attempts (the tests'
 * setup applies them to empty tables only): the stored rows end up listed. Expected rows by hand.
 */
import { env } from 'cloudflare:test';
import { toEngineGoal } from '../../src/funnel/definition';
import { writeProgress } from '../../src/funnel/progress-store';
import { eventsByTime } from '../../src/ingest/event-hours';
import { queryCountedAttempts } from '../../src/report/funnel-query';
import { viewer } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 5, 2, 8);

async function runMigration(name: string) {
  const migration = env.TEST_MIGRATIONS.find((m) => m.name === name);
  expect(migration).toBeDefined();
  await env.DB.batch((migration?.queries ?? []).map((sql) => env.DB.prepare(sql)));
}

describe('migration 0013 on stored events', () => {
  it('lists every stored event once, by site, hour and request', async () => {
    await env.DB.batch(
      ['DROP TABLE event_hours', 'CREATE INDEX events_site_ts ON events (site_id, ts)'].map((s) =>
        env.DB.prepare(s),
      ),
    );
    const insert = env.DB.prepare(
      `INSERT INTO events (site_id, message_id, type, event, ts, received_at, context, batch_id)
       VALUES (?, ?, 'track', 'view', ?, ?, '{}', ?)`,
    );
    await env.DB.batch([
      insert.bind('m13', 'e1', T, T, 'b1'),
      insert.bind('m13', 'e2', T + H - 1, T, 'b1'),
      insert.bind('m13', 'e3', T + H, T, 'b1'),
      insert.bind('m13', 'e4', T + 5, T, 'b2'),
      insert.bind('m13-other', 'e1', T, T, 'b1'),
    ]);

    await runMigration('0013_event_hours.sql');

    const { results } = await env.DB.prepare(
      'SELECT site_id, hour, batch_id, ids FROM event_hours ORDER BY site_id, hour, batch_id',
    ).all<{ site_id: string; hour: number; batch_id: string; ids: string }>();
    expect(
      results.map((r) => [r.site_id, (r.hour - T) / H, r.batch_id, JSON.parse(r.ids).sort()]),
    ).toEqual([
      ['m13', 0, 'b1', ['e1', 'e2']],
      ['m13', 0, 'b2', ['e4']],
      ['m13', 1, 'b1', ['e3']],
      ['m13-other', 0, 'b1', ['e1']],
    ]);
    const read = await env.DB.prepare(
      `SELECT message_id FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events`,
    )
      .bind('m13', T, T + 2 * H)
      .all<{ message_id: string }>();
    expect(read.results.map((r) => r.message_id).sort()).toEqual(['e1', 'e2', 'e3', 'e4']);
    const index = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE name = 'events_site_ts'",
    ).all();
    expect(index.results).toEqual([]);
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
