/**
 * The packed tables' query plans (migrations 0014–0016): every statement the readers and writers
 * of `event_packs` (and its `events` view), `attempts`, `attempt_hours` and `rejected_events` run
 * searches them by key (EXPLAIN QUERY PLAN), and message ids that JSON escapes round-trip
 * through the packs.
 */
import { env } from 'cloudflare:test';
import { ensureVolumes, loadSiteSeries } from '../../src/alerts/series-store';
import { recordStepVolumes } from '../../src/alerts/step-volumes';
import { listedPeople } from '../../src/funnel/attempt-hours';
import { toEngineGoal } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { writeProgress } from '../../src/funnel/progress-store';
import { rebuildRollups } from '../../src/funnel/rollups';
import { segmentOf } from '../../src/funnel/segment';
import { erasePersonEventsStatements, eventsByTime } from '../../src/ingest/event-packs';
import { storeBatch } from '../../src/ingest/event-store';
import { erasePerson, exportPerson } from '../../src/ingest/person-data';
import { reconcilePending } from '../../src/ingest/reconcile';
import { purgeExpired } from '../../src/ingest/retention';
import { queryCountedAttempts } from '../../src/report/funnel-query';
import { importBatch, observing, seedSite, settle, track } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 3, 7, 10);
const iso = (ms: number) => new Date(ms).toISOString();

/** The binding, recording every statement bound through it (SQL and values). */
const recording = (db: D1Database, seen: Array<{ sql: string; values: unknown[] }>) =>
  observing(db, { bound: (sql, values) => seen.push({ sql, values }) });

/**
 * A full scan of a changed table, by name or by the alias the statements give it. (`SCAN events`
 * is the readers' pass over the packs' subquery they name `events`, once it has searched them.)
 */
const CHANGED = /^SCAN (attempts|event_packs|attempt_hours|rejected_events|h|e|a)\b/;

describe('packed index query plans', () => {
  it('searches the changed tables by key in every statement that touches them', async () => {
    const site = await seedSite('rv-plans', ['view', 'buy']);
    await importBatch(site, [
      track('view', { userId: 'u1' }, 'm1', iso(T)),
      track('buy', { userId: 'u1' }, 'm2', iso(T + 1000)),
    ]);
    await settle(site);
    const seen: Array<{ sql: string; values: unknown[] }> = [];
    const db = recording(env.DB, seen);
    const renv = { ...env, DB: db } as typeof env;
    const refused = { index: 0, code: 'c', path: '', message: 'm', raw: {} };
    await storeBatch(db, {
      siteId: 'rv-plans',
      batchId: 'rv-x',
      receivedAt: T,
      events: [],
      rejected: [
        { ...refused, messageId: 'rm' },
        { ...refused, messageId: null },
      ],
      filtered: [{ code: 'bot', rule: 'r', raw: {}, messageId: 'fm' }],
    });
    await recordStepVolumes(db, T + 2 * H);
    await ensureVolumes(db, 'rv-plans', T - H, T + 2 * H, T + 3 * H);
    const fields = [{ event: 'view', field: 'properties.plan' }];
    await loadSiteSeries(db, {
      siteId: 'rv-plans',
      from: T - H,
      recentFrom: T - H,
      to: T + H,
      fields,
    });
    await reconcilePending(renv, T + 10 * 60_000);
    // The site object runs these against D1 when it erases a person (bound here to be planned).
    erasePersonEventsStatements(db, 'rv-plans', {
      events: [{ device: '', messageId: 'm1', ts: T }],
    });
    await exportPerson(renv, 'rv-plans', 'u1');
    const goal = toEngineGoal(
      { id: 'g', version: 1, name: 'G' },
      { steps: [{ event: 'view' }, { event: 'buy' }], window: '1h', mode: 'ordered' },
    );
    const view = { messageId: 'a', ts: T + 5, type: 'track', event: 'view', properties: null };
    const attempts = computeAttempts([view], goal).map((a) => ({ ...a, segment: segmentOf(null) }));
    const people = [{ personId: 'a:x', attempts: new Map([['g#1', attempts]]) }];
    await writeProgress(db, 'rv-plans', [goal], people);
    await rebuildRollups(db, 'rv-plans', [{ id: 'g', version: 1 }], T);
    const query = { siteId: 'rv-plans', goalId: 'g', version: 1, steps: 2, from: T, to: T + H };
    await queryCountedAttempts(db, query);
    await env.DB.prepare("UPDATE sites SET retention_days = 1 WHERE id = 'rv-plans'").run();
    await purgeExpired(db, T + 86_400_000 + 30 * 60_000);
    await erasePerson(renv, 'rv-plans', 'u1');
    // The rollup report's two exact edge reads, as src/report/rollup-report.ts builds them.
    const counted = `site_id = ?1 AND goal_id = ?2 AND version = ?3 AND t1 >= ?4 AND t1 < ?5`;
    const edges = [
      `SELECT COUNT(*) FROM attempts WHERE ${counted} AND close_at > ?6 AND close_at < ?7
         AND t1 > ?8 AND t1 < ?9 AND ${listedPeople('MAX(?4, ?8)', 'MIN(?5, ?9)')}`,
      `SELECT COUNT(*) FROM attempts WHERE ${counted} AND t1 >= ?6 AND t1 < ?7 AND t1 <= ?8
         AND ${listedPeople('MAX(?4, ?6)', 'MIN(?5, ?7)')}`,
    ];
    const values = ['rv-plans', 'g', 1, 1, 2, 3, 4, 5, 6];
    seen.push(
      { sql: edges[0] as string, values },
      { sql: edges[1] as string, values: values.slice(0, 8) },
    );

    const scans: string[] = [];
    let planned = 0;
    for (const { sql, values } of seen) {
      if (!/event_packs|attempt_hours|rejected_events|\bevents\b|\battempts\b/.test(sql)) continue;
      planned += 1;
      const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .bind(...values)
        .all<{ detail: string }>();
      for (const { detail } of results) {
        if (CHANGED.test(detail)) scans.push(`${detail} :: ${sql.replace(/\s+/g, ' ')}`);
      }
    }
    expect(planned).toBeGreaterThan(20);
    expect(scans).toEqual([]);
  });

  it('reads back message ids that JSON escapes or that look like numbers', async () => {
    const site = await seedSite('rv-odd', ['view']);
    const ids = ['a"b', '\\', '\u2028', 'é', '123', '1e3', ' x', 'x ', '\ud800x', '\u{1F600}'];
    const sent = ids.map((id, i) => track('view', { anonymousId: 'd' }, id, iso(T + i)));
    expect((await importBatch(site, sent)).status).toBe(200);
    await settle(site);
    const { results: stored } = await env.DB.prepare(
      "SELECT message_id FROM events WHERE site_id = 'rv-odd'",
    ).all<{ message_id: string }>();
    const { results: read } = await env.DB.prepare(
      `SELECT message_id FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events`,
    )
      .bind('rv-odd', T, T + H)
      .all<{ message_id: string }>();
    expect(stored).toHaveLength(ids.length);
    expect(read.map((r) => r.message_id).sort()).toEqual(stored.map((r) => r.message_id).sort());
  });
});
