/**
 * Report latency at 10k, 100k and 1M people. People and their events are generated in the shape
 * of the Puffy data, the pure funnel engine (bundled from src/) computes their attempts offline,
 * and the rows are bulk-loaded into the stack's local D1 file, which is what reports read. DuckDB
 * computes the same funnel from the same raw events in the same run, for comparison. The loader
 * writes each row with its rollup facts and builds the rollups with the rebuild SQL, so reports
 * over them answer from rollups (`source: "rollup"`).
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { build } from 'esbuild';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { seededRandom } from '../lib/random.mjs';
import { openLocalD1, repoRoot } from '../lib/stack.mjs';

const STEPS = ['page_viewed', 'product_added_to_cart', 'checkout_started', 'checkout_completed'];
const WEEK_MS = 7 * 86_400_000;
const START = Date.UTC(2025, 1, 23);
const NO_SEGMENT = {
  utmSource: null,
  utmMedium: null,
  utmCampaign: null,
  referrerDomain: null,
  device: null,
  browser: null,
  os: null,
  country: null,
};

/**
 * Loads the pure engine and the progress writer's row shaping (rollup facts included) and the
 * rollup rebuild SQL from src/ (TypeScript) through esbuild.
 */
async function loadEngine() {
  const out = await build({
    stdin: {
      contents: `export { computeAttempts } from './src/funnel/engine.ts';
        export { progressRows } from './src/funnel/progress-store.ts';
        export { ATTEMPT_FIELDS, rebuildRollupsSql } from './src/funnel/rollups.ts';`,
      resolveDir: repoRoot,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    write: false,
  });
  const source = out.outputFiles[0].text;
  return import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
}

/**
 * One person's events in the Puffy shape: 1–3 page views, then with falling odds cart (2 %),
 * checkout (21 % of those) and purchase (72 % of those), minutes apart.
 */
function personEvents(next, person) {
  const events = [];
  let t = START + Math.floor(next() * WEEK_MS);
  const views = 1 + Math.floor(next() * next() * 3);
  for (let i = 0; i < views; i += 1) {
    events.push({
      messageId: `${person}-v${i}`,
      ts: t,
      type: 'track',
      event: STEPS[0],
      properties: null,
    });
    t += Math.floor(next() * 600_000);
  }
  const odds = [0.02, 0.21, 0.72];
  for (let k = 1; k < STEPS.length; k += 1) {
    if (next() >= (odds[k - 1] ?? 0)) break;
    t += Math.floor(next() * 900_000);
    events.push({
      messageId: `${person}-s${k}`,
      ts: t,
      type: 'track',
      event: STEPS[k],
      properties: null,
    });
  }
  return events;
}

/**
 * Builds `people` people for `siteId`, writes their attempts straight into the stack's D1 file
 * and their raw events into a DuckDB table. Resolves with the DuckDB connection and timings.
 */
export async function loadPeople({ persistDir, siteId, goalId, version, people }) {
  const { computeAttempts, progressRows, ATTEMPT_FIELDS, rebuildRollupsSql } = await loadEngine();
  const d1 = await openLocalD1(persistDir);
  const insert = d1.prepare(
    `INSERT INTO attempts (site_id, ${ATTEMPT_FIELDS.join(', ')})
     VALUES (?, ${ATTEMPT_FIELDS.map(() => '?').join(', ')})`,
  );

  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  await duck.run('CREATE TABLE events (person VARCHAR, ts BIGINT, event VARCHAR)');
  const appender = await duck.createAppender('events');

  const goal = {
    id: goalId,
    version,
    name: 'bench',
    steps: STEPS.map((event) => ({ event })),
    windowMs: WEEK_MS,
  };
  const next = seededRandom(people);
  const started = performance.now();
  d1.exec('BEGIN');
  for (let p = 0; p < people; p += 1) {
    const person = `a:p${p}`;
    const events = personEvents(next, p);
    for (const e of events) {
      appender.appendVarchar(person);
      appender.appendBigInt(BigInt(e.ts));
      appender.appendVarchar(e.event);
      appender.endRow();
    }
    const attempts = computeAttempts(events, goal).map((a) => ({ ...a, segment: NO_SEGMENT }));
    for (const row of progressRows(goal, person, attempts)) insert.run(siteId, ...row);
    if (p % 50_000 === 49_999) {
      d1.exec('COMMIT');
      d1.exec('BEGIN');
    }
  }
  d1.exec('COMMIT');
  const loadSeconds = (performance.now() - started) / 1000;
  // The same "rebuild rollups from attempts" SQL a goal version's rebuild runs in D1.
  const rollupStarted = performance.now();
  d1.exec('BEGIN');
  for (const sql of rebuildRollupsSql()) {
    const used = Math.max(0, ...[...sql.matchAll(/\?(\d+)/g)].map((m) => Number(m[1])));
    d1.prepare(sql).run(...[siteId, goalId, version, Date.now()].slice(0, used));
  }
  d1.exec('COMMIT');
  const rollupRows = d1
    .prepare('SELECT COUNT(*) AS n FROM rollups WHERE site_id = ?')
    .get(siteId).n;
  d1.close();
  appender.closeSync();
  return {
    duck,
    loadSeconds,
    rollupSeconds: (performance.now() - rollupStarted) / 1000,
    rollupRows,
  };
}

/** The same ordered funnel computed by DuckDB from the raw events; resolves with ms and counts. */
export async function duckdbFunnel(duck) {
  const sql = `
    WITH s1 AS (SELECT person, ts AS t1 FROM events WHERE event = '${STEPS[0]}'),
    a2 AS (SELECT s1.person, t1, (SELECT min(ts) FROM events e WHERE e.person = s1.person
             AND e.event = '${STEPS[1]}' AND e.ts >= t1 AND e.ts <= t1 + ${WEEK_MS}) AS t2 FROM s1),
    a3 AS (SELECT *, (SELECT min(ts) FROM events e WHERE e.person = a2.person
             AND e.event = '${STEPS[2]}' AND e.ts >= t2 AND e.ts <= t1 + ${WEEK_MS}) AS t3 FROM a2),
    a4 AS (SELECT *, (SELECT min(ts) FROM events e WHERE e.person = a3.person
             AND e.event = '${STEPS[3]}' AND e.ts >= t3 AND e.ts <= t1 + ${WEEK_MS}) AS t4 FROM a3),
    scored AS (SELECT person, 1 + (t2 IS NOT NULL)::INT + (t3 IS NOT NULL)::INT
                 + (t4 IS NOT NULL)::INT AS reached, t1 FROM a4),
    best AS (SELECT person, arg_max(reached, reached * 1e13 - t1) AS reached FROM scored GROUP BY person)
    SELECT count(*) AS c1, count(*) FILTER (reached >= 2) AS c2, count(*) FILTER (reached >= 3) AS c3,
           count(*) FILTER (reached >= 4) AS c4 FROM best`;
  const started = performance.now();
  const rows = (await duck.runAndReadAll(sql)).getRowObjects();
  const ms = performance.now() - started;
  const row = rows[0];
  return { ms, counts: [row.c1, row.c2, row.c3, row.c4].map(Number) };
}
