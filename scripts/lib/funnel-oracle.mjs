// An independent computation of goalstep's funnel report over generated events, in DuckDB SQL.
// It shares nothing with src/ on purpose: it exists to catch the engine or the report being
// wrong. The rules are docs/METRICS.md ("Semantics by mode and option"). People are user ids
// (the generated events carry no anonymous ids), so identity stitching plays no part here.
import { DuckDBInstance } from '@duckdb/node-api';
import { ratio } from './oracle-core.mjs';

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 };
const DAY_MS = 86_400_000;

/** Milliseconds in a window written like `30m`, `12h` or `7d`. */
export function windowMs(text) {
  const match = /^(\d+)(m|h|d)$/.exec(String(text));
  if (!match) throw new Error(`unsupported window "${text}"`);
  return Number(match[1]) * UNIT_MS[match[2]];
}

const q = (text) => `'${String(text).replaceAll("'", "''")}'`;
const num = (value) => (value === null || value === undefined ? 'NULL' : String(value));

/** SQL predicate for one event matcher over alias `e` (only the shapes the generator makes). */
function matcherSql(m) {
  const parts = ['e.tracked'];
  if (m.type)
    parts.push(m.type === 'page' ? `e.type IN ('page', 'screen')` : `e.type = ${q(m.type)}`);
  if (m.event !== undefined) parts.push(`e.name = ${q(m.event)}`);
  if (m.path !== undefined) {
    if (/[%_\\]/.test(m.path)) throw new Error('the oracle takes path patterns without % _ \\');
    parts.push(`e.type <> 'track' AND e.path LIKE ${q(m.path.replaceAll('*', '%'))}`);
  }
  for (const f of m.where ?? []) {
    if (f.property === 'product_id' && f.op === 'eq') parts.push(`e.pid = ${q(String(f.value))}`);
    else if (f.property === 'revenue' && f.op === 'gt')
      parts.push(`e.revenue > ${Number(f.value)}`);
    else throw new Error(`the oracle does not model filter ${JSON.stringify(f)}`);
  }
  return `(${parts.join(' AND ')})`;
}

function stepSql(step) {
  if (step.anyOf) return `(${step.anyOf.map(matcherSql).join(' OR ')})`;
  return matcherSql(step);
}

async function all(connection, sql) {
  return (await connection.runAndReadAll(sql)).getRowObjectsJS();
}

/** Loads the generated events as table `ev`. */
async function loadEvents(connection, events) {
  await connection.run(`CREATE TABLE ev (mid VARCHAR, person VARCHAR, ts BIGINT, type VARCHAR,
    name VARCHAR, path VARCHAR, pid VARCHAR, revenue DOUBLE, tx VARCHAR, plan VARCHAR,
    src VARCHAR, tracked BOOLEAN)`);
  const rows = events.map((e) => {
    const p = (e.type === 'identify' ? e.traits : e.properties) ?? {};
    const name = e.type === 'track' ? e.event : (e.name ?? null);
    const pid = p.product_id === undefined || p.product_id === null ? null : String(p.product_id);
    const revenue = typeof p.revenue === 'number' ? p.revenue : null;
    return `(${q(e.messageId)}, ${q(`u:${e.userId}`)}, ${Date.parse(e.timestamp)}, ${q(e.type)},
      ${name === null ? 'NULL' : q(name)}, ${p.path === undefined ? 'NULL' : q(p.path)},
      ${pid === null ? 'NULL' : q(pid)}, ${num(revenue)}, ${p.tx === undefined ? 'NULL' : q(p.tx)},
      ${e.type === 'identify' && p.plan !== undefined ? q(p.plan) : 'NULL'},
      ${e.context?.campaign?.source ? q(e.context.campaign.source) : 'NULL'},
      ${['track', 'page', 'screen'].includes(e.type)})`;
  });
  for (let i = 0; i < rows.length; i += 500) {
    await connection.run(`INSERT INTO ev VALUES ${rows.slice(i, i + 500).join(',\n')}`);
  }
}

/** Tables m1..mN: the events each step can take (trait steps: the moments the trait enters). */
async function stepTables(connection, goal) {
  for (const [i, step] of goal.steps.entries()) {
    const k = i + 1;
    if (step.trait) {
      if (step.trait.property !== 'plan' || step.trait.op !== 'eq') {
        throw new Error('the oracle models trait steps `plan eq <value>` only');
      }
      await connection.run(`CREATE OR REPLACE TABLE m${k} AS
        SELECT person, mid, ts, pid, revenue, tx FROM (
          SELECT *, lag(plan = ${q(step.trait.value)})
            OVER (PARTITION BY person ORDER BY ts, mid) AS before
          FROM ev WHERE type = 'identify' AND plan IS NOT NULL)
        WHERE plan = ${q(step.trait.value)} AND coalesce(before, false) = false`);
    } else {
      await connection.run(`CREATE OR REPLACE TABLE m${k} AS
        SELECT person, mid, ts, pid, revenue, tx FROM ev e WHERE ${stepSql(step)}`);
    }
  }
  for (const [i, ex] of (goal.exclusions ?? []).entries()) {
    await connection.run(`CREATE OR REPLACE TABLE x${i} AS
      SELECT person, ts FROM ev e WHERE ${matcherSql(ex)}`);
  }
  await connection.run(`CREATE OR REPLACE TABLE tr AS
    SELECT person, mid, ts, row_number() OVER (PARTITION BY person ORDER BY ts, mid) AS pos
    FROM ev WHERE tracked`);
}

const INF = '9000000000000000';

/** The hold-constant condition for a candidate `e` of step k against the attempt `a`. */
function holdSql(goal, step) {
  if (!goal.holdConstant?.length || step.trait) return 'true';
  if (goal.holdConstant.some((key) => key !== 'product_id')) {
    throw new Error('the oracle holds product_id only');
  }
  return '(a.hold IS NOT NULL AND e.pid IS NOT NULL AND e.pid = a.hold)';
}

/** Step columns carried from the filled event. */
const fillCols = (k, found) =>
  `${found}.ts AS t${k}, ${found}.mid AS mid${k}, ${found}.revenue AS v${k}, ${found}.tx AS x${k}`;
const emptyCols = (k) =>
  `NULL::BIGINT AS t${k}, NULL::VARCHAR AS mid${k}, NULL::DOUBLE AS v${k}, NULL::VARCHAR AS x${k}`;

/** Builds table `att`: every attempt with step columns, in the goal's (or view's) mode. */
async function attempts(connection, goal, mode, W) {
  const n = goal.steps.length;
  const stepW = (s) => (s.window ? windowMs(s.window) : INF);
  const ctes = [];
  if (mode === 'ordered' || mode === 'strict') {
    ctes.push(`s1 AS (SELECT m.person, m.ts AS start_ts, m.mid AS start_mid, m.pid AS hold,
        [m.mid] AS used, m.ts AS prevreq, m.ts AS tlast, tr.pos AS pos, true AS alive,
        ${fillCols(1, 'm')}
      FROM m1 m JOIN tr ON tr.mid = m.mid)`);
    let prev = 's1';
    const req = goal.steps.map((s) => !s.optional);
    for (let k = 2; k <= n; k++) {
      const step = goal.steps[k - 1];
      const limit = `least(a.start_ts + ${W}, a.prevreq + ${stepW(step)})`;
      const name = `s${k}`;
      if (mode === 'ordered' && step.optional) {
        ctes.push(`${name} AS (SELECT a.*, ${emptyCols(k)} FROM ${prev} a)`);
      } else if (mode === 'ordered') {
        ctes.push(`${name} AS (SELECT a.* EXCLUDE (used, prevreq, alive),
            CASE WHEN n.ts IS NULL THEN a.used ELSE list_append(a.used, n.mid) END AS used,
            coalesce(n.ts, a.prevreq) AS prevreq, n.ts IS NOT NULL AS alive, ${fillCols(k, 'n')}
          FROM ${prev} a LEFT JOIN LATERAL (
            SELECT e.ts, e.mid, e.revenue, e.tx FROM m${k} e
            WHERE a.alive AND e.person = a.person AND e.ts >= a.prevreq AND e.ts <= ${limit}
              AND NOT list_contains(a.used, e.mid) AND ${holdSql(goal, step)}
            ORDER BY e.ts, e.mid LIMIT 1) n ON true)`);
      } else {
        // Strict: the next tracked event, or for a trait step the earliest moment after the last.
        const candidate = step.trait
          ? `SELECT e.ts, e.mid, e.revenue, e.tx, a.pos AS newpos FROM m${k} e
             WHERE a.alive AND e.person = a.person AND e.ts >= a.tlast AND e.ts <= ${limit}
             ORDER BY e.ts, e.mid LIMIT 1`
          : `SELECT e.ts, e.mid, e.revenue, e.tx, t.pos AS newpos FROM tr t JOIN m${k} e ON e.mid = t.mid
             WHERE a.alive AND t.person = a.person AND t.pos = a.pos + 1 AND e.ts >= a.tlast
               AND e.ts <= ${limit} AND ${holdSql(goal, step)}`;
        const keep = step.optional ? 'a.alive' : 'n.ts IS NOT NULL';
        ctes.push(`${name} AS (SELECT a.* EXCLUDE (prevreq, tlast, pos, alive),
            ${step.optional ? 'a.prevreq' : 'coalesce(n.ts, a.prevreq)'} AS prevreq,
            coalesce(n.ts, a.tlast) AS tlast, coalesce(n.newpos, a.pos) AS pos, ${keep} AS alive,
            ${fillCols(k, 'n')}
          FROM ${prev} a LEFT JOIN LATERAL (${candidate}) n ON true)`);
      }
      prev = name;
    }
    let sql = `WITH ${ctes.join(',\n')} SELECT * FROM ${prev}`;
    await connection.run(`CREATE OR REPLACE TABLE att AS ${sql}`);

    if (mode === 'ordered') {
      // Optional steps, in step order, between the previous filled and the next reached step.
      for (let k = 2; k <= n; k++) {
        const step = goal.steps[k - 1];
        if (!step.optional) continue;
        let r = k - 1;
        while (!req[r - 1]) r -= 1;
        const lows = Array.from({ length: k - r }, (_, i) => `a.t${r + i}`).join(', ');
        let next = null;
        for (let j = k + 1; j <= n; j++)
          if (req[j - 1]) {
            next = j;
            break;
          }
        const high = next ? `coalesce(a.t${next}, a.start_ts + ${W})` : `a.start_ts + ${W}`;
        await connection.run(`CREATE OR REPLACE TABLE att AS
          SELECT a.* EXCLUDE (used, t${k}, mid${k}, v${k}, x${k}),
            CASE WHEN n.ts IS NULL THEN a.used ELSE list_append(a.used, n.mid) END AS used,
            ${fillCols(k, 'n')}
          FROM att a LEFT JOIN LATERAL (
            SELECT e.ts, e.mid, e.revenue, e.tx FROM m${k} e
            WHERE a.t${r} IS NOT NULL AND e.person = a.person
              AND e.ts >= list_max([${lows}]) AND e.ts <= least(${high}, a.t${r} + ${stepW(step)})
              AND NOT list_contains(a.used, e.mid) AND ${holdSql(goal, step)}
            ORDER BY e.ts, e.mid LIMIT 1) n ON true`);
      }
    }
  } else {
    // Any order: starts at every required step's events; each step its earliest unused event.
    const starts = goal.steps
      .map((s, i) => (s.optional ? null : `SELECT person, ts, mid FROM m${i + 1}`))
      .filter(Boolean)
      .join(' UNION ');
    ctes.push(`s1 AS (SELECT st.person, st.ts AS start_ts, st.mid AS start_mid, n.pid AS hold,
        [n.mid] AS used, ${fillCols(1, 'n')}
      FROM (${starts}) st JOIN LATERAL (
        SELECT e.ts, e.mid, e.pid, e.revenue, e.tx FROM m1 e
        WHERE e.person = st.person AND e.ts >= st.ts AND e.ts <= st.ts + ${W}
        ORDER BY e.ts, e.mid LIMIT 1) n ON true)`);
    let prev = 's1';
    for (let k = 2; k <= n; k++) {
      ctes.push(`s${k} AS (SELECT a.* EXCLUDE (used),
          CASE WHEN n.ts IS NULL THEN a.used ELSE list_append(a.used, n.mid) END AS used,
          ${fillCols(k, 'n')}
        FROM ${prev} a LEFT JOIN LATERAL (
          SELECT e.ts, e.mid, e.revenue, e.tx FROM m${k} e
          WHERE e.person = a.person AND e.ts >= a.start_ts AND e.ts <= a.start_ts + ${W}
            AND NOT list_contains(a.used, e.mid) AND ${holdSql(goal, goal.steps[k - 1])}
          ORDER BY e.ts, e.mid LIMIT 1) n ON true)`);
      prev = `s${k}`;
    }
    await connection.run(
      `CREATE OR REPLACE TABLE raw_att AS WITH ${ctes.join(',\n')} SELECT * FROM ${prev}`,
    );
    // Step k is reached when every required step up to k is; its time is their latest.
    const cols = [];
    const doneBefore = [];
    for (let k = 1; k <= n; k++) {
      const step = goal.steps[k - 1];
      const complete = doneBefore.length
        ? doneBefore.map((j) => `mid${j} IS NOT NULL`).join(' AND ')
        : 'true';
      const latest = doneBefore.length
        ? `list_max([${doneBefore.map((j) => `t${j}`).join(', ')}])`
        : 'NULL';
      if (step.optional) {
        cols.push(`CASE WHEN t${k} IS NULL THEN NULL WHEN ${complete} THEN greatest(t${k}, ${latest})
          ELSE t${k} END AS t${k}, mid${k}, v${k}, x${k}`);
      } else {
        const ok = `${complete} AND mid${k} IS NOT NULL`;
        const all = [...doneBefore, k].map((j) => `t${j}`).join(', ');
        cols.push(`CASE WHEN ${ok} THEN list_max([${all}]) END AS t${k},
          CASE WHEN ${ok} THEN mid${k} END AS mid${k}, CASE WHEN ${ok} THEN v${k} END AS v${k},
          CASE WHEN ${ok} THEN x${k} END AS x${k}`);
        doneBefore.push(k);
      }
    }
    await connection.run(`CREATE OR REPLACE TABLE att AS
      SELECT person, start_ts, start_mid, ${cols.join(', ')} FROM raw_att`);
  }

  // Exclusions remove attempts; then the furthest attempt per (person, t1), earliest start.
  const excl = (goal.exclusions ?? []).map((ex, i) => {
    const from = ex.from ?? 1;
    const to = ex.to ?? n;
    return `NOT (a.t${from} IS NOT NULL AND EXISTS (SELECT 1 FROM x${i} e WHERE e.person = a.person
      AND e.ts > a.t${from} AND (CASE WHEN a.t${to} IS NULL THEN e.ts <= a.start_ts + ${W}
      ELSE e.ts < a.t${to} END)))`;
  });
  const reachedSql = `greatest(0, ${goal.steps
    .map((s, i) => (s.optional ? '0' : `CASE WHEN t${i + 1} IS NOT NULL THEN ${i + 1} ELSE 0 END`))
    .join(', ')})`;
  await connection.run(`CREATE OR REPLACE TABLE att2 AS
    SELECT a.*, ${reachedSql} AS reached, (SELECT src FROM ev WHERE ev.mid = a.start_mid) AS src
    FROM att a WHERE t1 IS NOT NULL ${excl.length ? `AND ${excl.join(' AND ')}` : ''}
    QUALIFY row_number() OVER (PARTITION BY person, t1
      ORDER BY reached DESC, start_ts, start_mid) = 1`);
}

/** Every metric of one group of counted attempts (table `counted`, rows where `where`). */
async function metrics(connection, goal, view, where, now) {
  const n = goal.steps.length;
  const W = view.windowMs;
  const required = goal.steps.map((s, i) => (s.optional ? null : i + 1)).filter(Boolean);
  const last = required[required.length - 1];
  const prevReq = (k) => {
    for (let j = k - 1; j >= 1; j--) if (!goal.steps[j - 1].optional) return j;
    return null;
  };
  const cols = ['count(*)::INTEGER AS entered', `count(*) FILTER (WHERE open)::INTEGER AS open`];
  for (let k = 1; k <= n; k++) {
    cols.push(`count(t${k})::INTEGER AS c${k}`);
    cols.push(
      `count(*) FILTER (WHERE open AND t${k} IS NULL AND reached < ${k})::INTEGER AS of${k}`,
    );
    const p = prevReq(k);
    cols.push(`count(*) FILTER (WHERE open AND t${k} IS NULL AND reached < ${k}
      AND ${p === null ? 'false' : `t${p} IS NOT NULL`})::INTEGER AS ip${k}`);
    if (k > 1) {
      const before = Array.from({ length: k - 1 }, (_, i) => `t${k - 1 - i}`).join(', ');
      const d = `(t${k} - coalesce(${before}))::DOUBLE`;
      cols.push(`quantile_cont(${d}, 0.5) AS med${k}, quantile_cont(${d}, 0.9) AS p90${k},
        avg(${d}) AS mean${k}, min(${d}) AS min${k}, max(${d}) AS max${k}`);
    }
  }
  const buckets = [1, 7, 14, 30]
    .filter((d) => d * DAY_MS < Math.min(W, 30 * DAY_MS))
    .map((d) => [`${d}d`, d * DAY_MS]);
  const cap = Math.min(W, 30 * DAY_MS);
  buckets.push([
    cap % DAY_MS === 0
      ? `${cap / DAY_MS}d`
      : cap % 3_600_000 === 0
        ? `${cap / 3_600_000}h`
        : `${cap / 60_000}m`,
    cap,
  ]);
  buckets.forEach(([, ms], i) => {
    cols.push(`count(*) FILTER (WHERE t${last} - t1 <= ${ms})::INTEGER AS w${i}`);
    cols.push(
      `count(*) FILTER (WHERE t1 + ${ms} <= ${now} OR t${last} - t1 <= ${ms})::INTEGER AS e${i}`,
    );
  });
  const [row] = await all(connection, `SELECT ${cols.join(', ')} FROM counted WHERE ${where}`);

  const values = [];
  for (let k = 1; k <= n; k++) {
    if (!goal.value) {
      values.push(null);
      continue;
    }
    // Orders sharing a dedupe key count once: the earliest by step time, then message id.
    const [v] = await all(
      connection,
      `SELECT count(*)::INTEGER AS n, sum(v${k}) AS total FROM (
         SELECT v${k}, x${k}, row_number() OVER (PARTITION BY coalesce(x${k}, mid${k})
           ORDER BY t${k}, mid${k}) AS rn
         FROM counted WHERE ${where} AND t${k} IS NOT NULL AND v${k} IS NOT NULL)
       WHERE x${k} IS NULL OR rn = 1`,
    );
    values.push(v.n === 0 ? null : Math.round(v.total * 1e6) / 1e6);
  }

  const sec = (ms) => (ms === null || ms === undefined ? null : Math.round(ms) / 1000);
  const steps = goal.steps.map((_, i) => {
    const k = i + 1;
    const count = row[`c${k}`];
    const ip = k === 1 ? 0 : row[`ip${k}`];
    const p = prevReq(k);
    const previous = p === null ? count : row[`c${p}`];
    const dropOff = k === 1 ? 0 : previous - count - ip;
    return {
      index: k,
      count,
      inProgress: ip,
      conversionFromPrevious: k === 1 ? (count === 0 ? null : 1) : ratio(count, previous - ip),
      conversionFromFirst: ratio(count, row.entered - (k === 1 ? 0 : row[`of${k}`])),
      dropOff,
      dropOffRate: k === 1 ? (count === 0 ? null : 0) : ratio(dropOff, previous - ip),
      secondsFromPrevious:
        k === 1
          ? { median: null, p90: null, mean: null, min: null, max: null }
          : {
              median: sec(row[`med${k}`]),
              p90: sec(row[`p90${k}`]),
              mean: sec(row[`mean${k}`]),
              min: sec(row[`min${k}`]),
              max: sec(row[`max${k}`]),
            },
      value: values[i],
    };
  });
  return {
    entered: row.entered,
    completed: row[`c${last}`],
    inProgress: row.open,
    completionRate: ratio(row[`c${last}`], row.entered - row.open),
    completionWithin: buckets.map(([label], i) => ({
      within: label,
      completed: row[`w${i}`],
      eligible: row[`e${i}`],
      rate: ratio(row[`w${i}`], row[`e${i}`]),
    })),
    steps,
  };
}

/**
 * The report for `goal` over `events` in `view` ({ mode, window, from, to, tz, now, breakdown,
 * top, interval }): the fields goalstep's JSON report carries, computed in DuckDB.
 */
export async function oracleReport({ events, goal, view }) {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await loadEvents(connection, events);
    await stepTables(connection, goal);
    const W = windowMs(view.window);
    const v = { ...view, windowMs: W };
    await attempts(connection, goal, view.mode, W);

    // The counted attempt per person: furthest required step, then earliest t1, in range.
    const required = goal.steps.map((s, i) => (s.optional ? null : i + 1)).filter(Boolean);
    const nReq = required[required.length - 1];
    // In progress: not complete, goal window open, and the next required step's window open.
    const nextWindow = required
      .map((k, idx) => {
        const step = goal.steps[k - 1];
        if (!step.window || view.mode === 'any' || idx === 0) return null;
        return `WHEN reached = ${required[idx - 1]} THEN ${view.now} < t${required[idx - 1]} + ${windowMs(step.window)}`;
      })
      .filter(Boolean);
    await connection.run(`CREATE OR REPLACE TABLE counted AS
      SELECT *, (reached < ${nReq} AND ${view.now} < t1 + ${W}
        AND ${nextWindow.length ? `CASE ${nextWindow.join(' ')} ELSE true END` : 'true'}) AS open
      FROM att2 WHERE t1 >= ${view.from} AND t1 < ${view.to}
      QUALIFY row_number() OVER (PARTITION BY person ORDER BY reached DESC, t1) = 1`);

    const report = await metrics(connection, goal, v, 'true', view.now);
    const fmt = view.interval === 'week' ? `date_trunc('week', ${'local'})` : 'local';
    report.overTime = (
      await all(
        connection,
        `SELECT strftime(${fmt}, '%Y-%m-%d') AS bucket, count(*)::INTEGER AS entered,
           count(t${nReq})::INTEGER AS completed
         FROM (SELECT *, timezone(${q(view.tz)}, to_timestamp(t1 / 1000.0))::DATE AS local FROM counted)
         GROUP BY bucket ORDER BY bucket`,
      )
    ).map((r) => ({ bucket: r.bucket, entered: r.entered, completed: r.completed }));

    if (view.breakdown) {
      // The segment at entry: the start event's utm_source, or the plan of the person's latest
      // identify at or before the start.
      const segment = {
        utm_source: 'a.src',
        'trait:plan': `(SELECT i.plan FROM ev i WHERE i.person = a.person AND i.type = 'identify'
          AND i.plan IS NOT NULL AND i.ts <= a.start_ts ORDER BY i.ts DESC, i.mid DESC LIMIT 1)`,
      }[view.breakdown];
      if (!segment) throw new Error(`the oracle does not break down by ${view.breakdown}`);
      await connection.run(`CREATE OR REPLACE TABLE counted AS
        SELECT a.* EXCLUDE (src), ${segment} AS src FROM counted a`);
      // Ranked by entrants, ties by value with no value last (docs/METRICS.md, breakdowns).
      const ranked = await all(
        connection,
        `SELECT src AS value, count(*)::INTEGER AS n FROM counted
         GROUP BY src ORDER BY n DESC, src NULLS LAST`,
      );
      const shown = ranked.slice(0, view.top);
      const is = (value) => `src IS NOT DISTINCT FROM ${value === null ? 'NULL' : q(value)}`;
      const groups = [];
      for (const { value } of shown) {
        groups.push({
          value,
          kind: value === null ? 'none' : 'value',
          ...(await metrics(connection, goal, v, is(value), view.now)),
        });
      }
      if (ranked.length > view.top) {
        const rest = `NOT (${shown.map((r) => is(r.value)).join(' OR ')})`;
        groups.push({
          value: null,
          kind: 'other',
          ...(await metrics(connection, goal, v, rest, view.now)),
        });
      }
      report.breakdown = { by: view.breakdown, top: view.top, groups };
    } else {
      report.breakdown = null;
    }
    return report;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
