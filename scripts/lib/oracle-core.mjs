// An independent computation of a goal's funnel over the Puffy CSVs, in DuckDB SQL. It shares
// nothing with src/ on purpose: it exists to catch the funnel engine being wrong. The funnel rules
// are docs/METRICS.md; the identity rules are those of `assignPeople` below.
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { isbot } from 'isbot';
import { listCsvFiles } from './puffy.mjs';

const DEMO_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'demo.json');
const DAY_MS = 86_400_000;

/** Seconds in a goal window written like `7d`, `12h`, `30m` or `45s`. */
export function parseWindow(text) {
  const match = /^(\d+)([dhms])$/.exec(String(text));
  if (!match) throw new Error(`unsupported window "${text}"`);
  const unit = { d: 86_400, h: 3_600, m: 60, s: 1 }[match[2]];
  return Number(match[1]) * unit;
}

/** Step event names and window of the demo goal in scripts/demo.json. */
export function demoGoal() {
  const demo = JSON.parse(readFileSync(DEMO_PATH, 'utf8'));
  return {
    steps: demo.goal.steps.map((step) => step.event),
    windowSeconds: parseWindow(demo.goal.window),
  };
}

function sqlString(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}

function toMs(instant, label) {
  const ms = instant instanceof Date ? instant.getTime() : Date.parse(instant);
  if (!Number.isFinite(ms)) throw new Error(`invalid ${label}: ${instant}`);
  return ms;
}

/** `a / b` rounded half away from zero to 4 decimals with integer arithmetic; 0/0 → null. */
export function ratio(a, b) {
  if (b === 0) return null;
  // Exact for non-negative integers: floor((a * 10^4 / b) + 1/2).
  const numerator = 2 * a * 10_000 + b;
  const denominator = 2 * b;
  return (numerator - (numerator % denominator)) / denominator / 10_000;
}

function selectedFiles(dir, files) {
  let paths = listCsvFiles(dir);
  if (files) {
    const wanted = new Set(files);
    paths = paths.filter((path) => wanted.has(basename(path)));
  }
  if (paths.length === 0) throw new Error(`no events_*.csv files selected in ${dir}`);
  return paths;
}

async function all(connection, sql) {
  const reader = await connection.runAndReadAll(sql);
  return reader.getRowObjectsJS();
}

/**
 * Removes rows whose user agent the `isbot` library flags: goalstep stores those as filtered
 * traffic and never counts them (docs/INGEST.md). The patterns use look-behind, which DuckDB's
 * RE2 lacks, so each distinct agent is judged here in JS and the verdicts joined in SQL.
 */
async function dropBotRows(connection) {
  const agents = await all(connection, `SELECT DISTINCT ua FROM csv_rows WHERE ua IS NOT NULL`);
  const bots = agents.map((row) => row.ua).filter((ua) => isbot(ua));
  await connection.run(`CREATE TEMP TABLE bot_agents (ua VARCHAR)`);
  for (let i = 0; i < bots.length; i += 200) {
    const values = bots.slice(i, i + 200).map((ua) => `(${sqlString(ua)})`).join(', ');
    await connection.run(`INSERT INTO bot_agents VALUES ${values}`);
  }
  await connection.run(`DELETE FROM csv_rows WHERE ua IN (SELECT ua FROM bot_agents)`);
}

/**
 * Loads the CSVs into table `csv_rows(mid, aid, email, event, ts, ua)`, bot rows removed:
 * message id, browser id, e-mail hash, event name, event time in epoch milliseconds, user agent.
 */
async function loadRows(connection, paths) {
  // The empty first SELECT makes both spellings of the browser-id column exist whatever files
  // are chosen; UNION ALL BY NAME fills the missing one with NULL.
  const parts = [`SELECT NULL::VARCHAR AS client_id, NULL::VARCHAR AS "clientId" WHERE false`];
  for (const path of paths) {
    parts.push(
      `SELECT *, ${sqlString(basename(path))} AS file FROM read_csv(${sqlString(path)}, ` +
        `header = true, delim = ',', quote = '"', escape = '"', all_varchar = true) ` +
        `WITH ORDINALITY`,
    );
  }
  await connection.run(`CREATE TEMP TABLE raw AS ${parts.join(' UNION ALL BY NAME ')}`);

  // Message ids use the file line; ordinality + 1 is that line only when no record spans lines
  // and none are skipped, so check the line count of every file.
  for (const path of paths) {
    const [check] = await all(
      connection,
      `SELECT
         (SELECT count(*) FROM raw WHERE file = ${sqlString(basename(path))})::INTEGER AS records,
         (length(content) - length(replace(content, chr(10), ''))
           + CASE WHEN suffix(content, chr(10)) THEN 0 ELSE 1 END)::INTEGER AS lines
       FROM read_text(${sqlString(path)})`,
    );
    if (check.lines !== check.records + 1) {
      throw new Error(
        `${path}: ${check.records} records on ${check.lines} lines; ` +
          'row line numbers cannot be derived from record order',
      );
    }
  }

  await connection.run(`
    CREATE TEMP TABLE csv_rows AS
    SELECT
      'puffy-' || file || '-' || (ordinality + 1) AS mid,
      nullif(coalesce(client_id, "clientId"), '') AS aid,
      CASE WHEN json_valid(event_data) AND json_type(event_data, '$.user_email') = 'VARCHAR'
        THEN nullif(json_extract_string(event_data, '$.user_email'), '') END AS email,
      event_name AS event,
      epoch_ms(CAST("timestamp" AS TIMESTAMPTZ)) AS ts,
      nullif(user_agent, '') AS ua
    FROM raw`);
  await dropBotRows(connection);
  const [bad] = await all(
    connection,
    `SELECT count(*)::INTEGER AS n FROM csv_rows WHERE ts IS NULL`,
  );
  if (bad.n > 0) throw new Error(`${bad.n} rows have no parseable timestamp`);
}

/**
 * Creates table `people(mid, person, event, ts)` for rows with any id. Stitched: a row with an
 * e-mail hash is `u:<hash>`; otherwise its browser id's latest link at or before the row's time
 * (ties: the link row with the greatest message id), else its first link, else `a:<browser id>`.
 * Unstitched: `a:<browser id>`, or `u:<hash>` when the row has no browser id.
 */
async function assignPeople(connection, table, stitched) {
  if (!stitched) {
    await connection.run(`
      CREATE TEMP TABLE ${table} AS
      SELECT mid, CASE WHEN aid IS NOT NULL THEN 'a:' || aid ELSE 'u:' || email END AS person,
        event, ts
      FROM csv_rows WHERE aid IS NOT NULL OR email IS NOT NULL`);
    return;
  }
  await connection.run(`
    CREATE TEMP TABLE ${table} AS
    WITH links AS (
      SELECT aid, email, ts, mid FROM csv_rows WHERE aid IS NOT NULL AND email IS NOT NULL
    ),
    ranked_before AS (
      SELECT r.mid, l.email,
        row_number() OVER (PARTITION BY r.mid ORDER BY l.ts DESC, l.mid DESC) AS rank
      FROM csv_rows r JOIN links l ON l.aid = r.aid AND l.ts <= r.ts
      WHERE r.email IS NULL
    ),
    ranked_first AS (
      SELECT aid, email, row_number() OVER (PARTITION BY aid ORDER BY ts, mid) AS rank
      FROM links
    )
    SELECT r.mid,
      CASE
        WHEN r.email IS NOT NULL THEN 'u:' || r.email
        WHEN b.email IS NOT NULL THEN 'u:' || b.email
        WHEN f.email IS NOT NULL THEN 'u:' || f.email
        ELSE 'a:' || r.aid
      END AS person,
      r.event, r.ts
    FROM csv_rows r
    LEFT JOIN ranked_before b ON b.mid = r.mid AND b.rank = 1
    LEFT JOIN ranked_first f ON f.aid = r.aid AND f.rank = 1
    WHERE r.aid IS NOT NULL OR r.email IS NOT NULL`);
}

/** Runs the ordered funnel of docs/METRICS.md over `table` and shapes the report fields. */
async function funnel(connection, table, { steps, windowSeconds, from, to }) {
  if (steps.length < 1 || steps.length > 10) throw new Error('a goal has 1 to 10 steps');
  if (new Set(steps).size !== steps.length) {
    // With repeated event names one event could fill two steps; this oracle does not model
    // the "one event fills at most one step" rule, so refuse rather than be silently wrong.
    throw new Error('the oracle supports only distinct step events');
  }
  const windowMs = windowSeconds * 1000;
  const fromMs = toMs(from, 'from');
  const toMsValue = toMs(to, 'to');
  const n = steps.length;

  // Attempt k+1 extends attempt k with the earliest step-(k+1) event at or after t(k) and at or
  // before t1 + W; distinct step-1 times start distinct attempts.
  const ctes = [
    `a1 AS (SELECT DISTINCT person, ts AS t1 FROM ${table}
       WHERE event = ${sqlString(steps[0])} AND ts >= ${fromMs} AND ts < ${toMsValue})`,
  ];
  for (let k = 2; k <= n; k++) {
    const previous = Array.from({ length: k - 1 }, (_, i) => `a.t${i + 1}`).join(', ');
    ctes.push(`a${k} AS (
      SELECT a.person, ${previous}, (
        SELECT min(e.ts) FROM ${table} e
        WHERE e.person = a.person AND e.event = ${sqlString(steps[k - 1])}
          AND e.ts >= a.t${k - 1} AND e.ts <= a.t1 + ${windowMs}
      ) AS t${k}
      FROM a${k - 1} a)`);
  }
  const reachedExpr = Array.from(
    { length: n },
    (_, i) => `(t${i + 1} IS NOT NULL)::INTEGER`,
  ).join(' + ');
  ctes.push(`counted AS (
    SELECT *, ${reachedExpr} AS reached FROM a${n}
    QUALIFY row_number() OVER (PARTITION BY person ORDER BY reached DESC, t1) = 1)`);

  const columns = [];
  for (let k = 1; k <= n; k++) {
    columns.push(`(count(*) FILTER (WHERE reached >= ${k}))::INTEGER AS c${k}`);
    if (k > 1) {
      columns.push(
        `quantile_cont((t${k} - t${k - 1})::DOUBLE, 0.5) FILTER (WHERE reached >= ${k}) AS m${k}`,
      );
    }
  }
  const [row] = await all(
    connection,
    `WITH ${ctes.join(',\n')} SELECT ${columns.join(', ')} FROM counted`,
  );

  const counts = steps.map((_, i) => row[`c${i + 1}`]);
  const report = { entered: counts[0], completed: counts[n - 1], steps: [] };
  for (let k = 1; k <= n; k++) {
    const count = counts[k - 1];
    const previous = k > 1 ? counts[k - 2] : count;
    const medianMs = k > 1 ? row[`m${k}`] : null;
    report.steps.push({
      index: k,
      event: steps[k - 1],
      count,
      conversionFromPrevious: k === 1 ? 1 : ratio(count, previous),
      conversionFromFirst: ratio(count, counts[0]),
      dropOff: k === 1 ? 0 : previous - count,
      dropOffRate: k === 1 ? 0 : ratio(previous - count, previous),
      // Durations are whole milliseconds, so the median is a multiple of 0.5 ms and positive;
      // Math.round then rounds halves away from zero.
      medianSecondsFromPrevious: medianMs === null ? null : Math.round(medianMs) / 1000,
    });
  }
  return report;
}

async function withDatabase(dir, files, work) {
  const paths = selectedFiles(dir, files);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await loadRows(connection, paths);
    return await work(connection);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** First day (UTC midnight) and the day after the last day of the event times in `csv_rows`. */
async function dataRange(connection) {
  const [row] = await all(
    connection,
    `SELECT min(ts)::DOUBLE AS lo, max(ts)::DOUBLE AS hi FROM csv_rows`,
  );
  const from = Math.floor(row.lo / DAY_MS) * DAY_MS;
  const to = (Math.floor(row.hi / DAY_MS) + 1) * DAY_MS;
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
}

async function withDefaults(connection, options) {
  const goal = demoGoal();
  const range = options.from && options.to ? {} : await dataRange(connection);
  return {
    steps: options.steps ?? goal.steps,
    windowSeconds: options.windowSeconds ?? goal.windowSeconds,
    from: options.from ?? range.from,
    to: options.to ?? range.to,
  };
}

/**
 * The stitched ordered funnel `{ entered, completed, steps: [...] }` over the CSVs in `dir`
 * (optionally only the basenames in `files`) for attempts starting in `[from, to)` (UTC ISO
 * instants). Steps and window default to the demo goal, the range to the data's whole days.
 */
export async function computeFunnel({ dir, files, steps, windowSeconds, from, to }) {
  return withDatabase(dir, files, async (connection) => {
    const options = await withDefaults(connection, { steps, windowSeconds, from, to });
    await assignPeople(connection, 'people', true);
    return funnel(connection, 'people', options);
  });
}

/**
 * Identity facts of the CSVs and the funnel with and without stitching (same defaults as
 * `computeFunnel`).
 */
export async function stitchStats({ dir, files, steps, windowSeconds, from, to }) {
  return withDatabase(dir, files, async (connection) => {
    const options = await withDefaults(connection, { steps, windowSeconds, from, to });
    const [facts] = await all(
      connection,
      `WITH links AS (
         SELECT DISTINCT aid, email FROM csv_rows WHERE aid IS NOT NULL AND email IS NOT NULL
       )
       SELECT
         (SELECT count(*) FROM csv_rows)::INTEGER AS "rows",
         (SELECT count(*) FROM csv_rows WHERE aid IS NULL AND email IS NULL
         )::INTEGER AS "rowsWithoutId",
         (SELECT count(DISTINCT aid) FROM csv_rows)::INTEGER AS "browserIds",
         (SELECT count(DISTINCT aid) FROM links)::INTEGER AS "linkedBrowserIds",
         (SELECT count(DISTINCT email) FROM links)::INTEGER AS "linkedUsers",
         (SELECT count(DISTINCT email) FROM csv_rows)::INTEGER AS "users",
         (SELECT count(*) FROM (SELECT aid FROM links GROUP BY aid HAVING count(*) > 1)
         )::INTEGER AS "browserIdsWithSeveralUsers",
         (SELECT count(*) FROM (SELECT email FROM links GROUP BY email HAVING count(*) > 1)
         )::INTEGER AS "usersWithSeveralBrowserIds"`,
    );
    await assignPeople(connection, 'people', true);
    await assignPeople(connection, 'people_plain', false);
    const [persons] = await all(
      connection,
      `SELECT (SELECT count(DISTINCT person) FROM people)::INTEGER AS stitched,
         (SELECT count(DISTINCT person) FROM people_plain)::INTEGER AS unstitched`,
    );
    return {
      ...facts,
      persons,
      range: { from: options.from, to: options.to },
      stitched: await funnel(connection, 'people', options),
      unstitched: await funnel(connection, 'people_plain', options),
    };
  });
}
