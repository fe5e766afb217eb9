/**
 * The SQL that keeps `rollups` and `rollup_durations` equal to an aggregate of `attempts`
 * (docs/METRICS.md, "Rollups"). Every statement here is the same projection of attempt rows into
 * rollup keys and sums, applied with a sign: -1 for rows replaced, +1 for rows written, so a
 * replayed write nets to zero. A progress write does not move the rollups itself: it appends the
 * rows it changed, signed, to `rollup_log` (one row, in the same D1 batch as the rows), and a
 * fold applies the log to the rollups and empties it in one transaction. The site object folds
 * about once an hour (src/identity/site-state-do.ts, `FOLD_EVERY_MS`); a rollup report, a
 * rebuild and an erasure fold first, in their own batch, so what they read or change is always
 * the aggregate of `attempts`. A rollup key shared by the writes of an hour is then written once,
 * not once per write (docs/BENCHMARKS.md, cost). No statement depends on a goal's definition:
 * what depends on it is stored on each row (src/funnel/attempt-facts.ts).
 */
import { HOUR_MS } from './attempt-facts';
import { LIST_NEW_KEYS_SQL, RELIST_VERSION_SQL } from './attempt-hours';
import { SEGMENT_COLUMNS } from './segment';

/** The stand-in hours for "no such attempt": before every entry, after every entry. */
export const NO_PREV_HOUR = -1;
export const NO_NEXT_HOUR = 1_000_000_000;
/** The open hour of an attempt that is never in progress. */
export const NEVER_OPEN_HOUR = -1;
/** The stored value of a missing segment value (no real segment value is empty). */
export const NONE_VALUE = '';

/** The rollup dims: '' for the total, then every segment column. */
export const ROLLUP_DIMS = ['', ...Object.values(SEGMENT_COLUMNS)] as const;

const STEPS = 10;
const WITHIN = 5;
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The summed columns of `rollups`, with the SQL each one sums (per attempt row `a`). */
export const ROLLUP_MEASURES: ReadonlyArray<readonly [string, string]> = [
  ['n', '1'],
  ...range(1, STEPS).map((k) => [`c${k}`, `(t${k} IS NOT NULL)`] as const),
  ...range(2, STEPS).map((k) => [`o${k}`, `((open_mask >> ${k - 1}) & 1)`] as const),
  ...range(2, STEPS).map((k) => [`p${k}`, `((progress_mask >> ${k - 1}) & 1)`] as const),
  ...range(2, STEPS).map((k) => {
    const before = range(1, k - 1)
      .reverse()
      .map((j) => `t${j}`)
      .join(', ');
    return [`d${k}`, `COALESCE(t${k} - COALESCE(${before}, t1), 0)`] as const;
  }),
  ...range(0, WITHIN - 1).map((i) => [`w${i}`, `((done_mask >> ${i}) & 1)`] as const),
  ...range(1, STEPS).map((k) => {
    const value = `(step_values ->> '$[${k - 1}][0]')`;
    return [
      `v${k}`,
      `CASE WHEN t${k} IS NOT NULL THEN COALESCE(CAST(ROUND(${value} * 1000000) AS INTEGER), 0) ` +
        'ELSE 0 END',
    ] as const;
  }),
  ...range(1, STEPS).map((k) => {
    const value = `(step_values ->> '$[${k - 1}][0]')`;
    return [`vn${k}`, `(t${k} IS NOT NULL AND ${value} IS NOT NULL)`] as const;
  }),
];

/** The columns of an `attempts` row the projection and the writer use, in JSON-row order. */
export const ATTEMPT_FIELDS = [
  'goal_id',
  'version',
  'person_id',
  't1',
  'reached',
  ...range(2, STEPS).map((k) => `t${k}`),
  ...Object.values(SEGMENT_COLUMNS),
  'step_values',
  'entry_props',
  'prev_ge',
  'next_gt',
  'close_at',
  'open_mask',
  'progress_mask',
  'done_mask',
  'duration_buckets',
] as const;

const KEY = ['goal_id', 'version', 'dim', 'hour', 'prev_hour', 'next_hour', 'open_hour', 'value'];
const DURATION_KEY = [
  'goal_id',
  'version',
  'dim',
  'hour',
  'prev_hour',
  'next_hour',
  'value',
  'step',
  'bucket',
];

/** SQL of a breakdown value: the segment column of dim; '' when missing (no segment value is
 * empty), and for the total. */
export function dimValueSql(dim: string, row = ''): string {
  if (dim === '') return "''";
  return `COALESCE(${row}${dim}, '${NONE_VALUE}')`;
}

/**
 * The keyed facts of a signed source of attempt rows carrying their hour keys (`hoursOf`), one
 * per dim, restricted to attempts that can be counted in some hour-aligned range: an earlier
 * attempt as far in the same hour, or a further one later in the same hour, rules that out for
 * good. A breakdown dim keeps no row for "no value" (`NONE_VALUE`): every sum is additive, so a
 * report takes it as the total's row less the dim's other values (src/report/rollup-report.ts).
 * Most traffic has no campaign and many visits no referrer, so that is about a sixth of the rows
 * a fold writes (docs/BENCHMARKS.md, session 9).
 */
function factsCte(keyedSource: string, materialized = false): string {
  const dims = ROLLUP_DIMS.map((d) => `('${d}')`).join(', ');
  const cases = ROLLUP_DIMS.map((d) => `WHEN '${d}' THEN ${dimValueSql(d, 's.')}`);
  const value = `CASE dims.dim ${cases.join(' ')} END`;
  return `src AS ${materialized ? 'MATERIALIZED ' : ''}(${keyedSource}),
    dims(dim) AS (VALUES ${dims}),
    keyed AS (SELECT s.*, dims.dim AS dim, ${value} AS value FROM src s CROSS JOIN dims),
    facts AS (SELECT * FROM keyed WHERE prev_hour < hour AND next_hour > hour
      AND (dim = '' OR value <> '${NONE_VALUE}'))`;
}

const SEGMENT_NAMES: readonly string[] = Object.values(SEGMENT_COLUMNS);

/** The source's rows with their hour keys (the hours of `t1`, `prev_ge`, `next_gt`, closing). */
function hoursOf(source: string): string {
  return `SELECT s.*, s.t1 / ${HOUR_MS} AS hour,
      COALESCE(s.prev_ge / ${HOUR_MS}, ${NO_PREV_HOUR}) AS prev_hour,
      COALESCE(s.next_gt / ${HOUR_MS}, ${NO_NEXT_HOUR}) AS next_hour,
      COALESCE(s.close_at / ${HOUR_MS}, ${NEVER_OPEN_HOUR}) AS open_hour
    FROM (${source}) s`;
}

/**
 * Statements that add the signed source's contribution to both rollup tables (site is ?1).
 * `bucketSource` may leave out rows without duration buckets (most: an attempt that reached
 * only its first step has none), so the durations statement does not shape them for nothing.
 * `materialized` (the fold of the log, whose size the site object bounds) has SQLite read each
 * source row's fields once into a table of its own: inlined, every measure that names a field
 * extracts it from the entry's JSON again, and a fold took about a third longer
 * (docs/BENCHMARKS.md, session 10). Not for a version's rebuild, whose source is every row.
 */
function deltaStatements(source: string, bucketSource = source, materialized = false): string[] {
  const names = ROLLUP_MEASURES.map(([name]) => name);
  // The rows are summed per hour keys and segment values first, then copied once per dim and
  // summed again: attempts sharing their segment values cost one row per dim, not one each.
  const rowKey = [...KEY.filter((c) => c !== 'dim' && c !== 'value'), ...SEGMENT_NAMES];
  const rowSums = ROLLUP_MEASURES.map(([name, expr]) => `SUM(sign * ${expr}) AS ${name}`);
  const read = materialized ? `raw AS MATERIALIZED (${source}), ` : '';
  const counts = `WITH ${read}${factsCte(
    `SELECT ${rowKey.join(', ')}, ${rowSums.join(', ')}
     FROM (${hoursOf(materialized ? 'SELECT * FROM raw' : source)})
     WHERE prev_hour < hour AND next_hour > hour
     GROUP BY ${rowKey.join(', ')}`,
  )}
    INSERT INTO rollups (site_id, ${KEY.join(', ')}, ${names.join(', ')})
    SELECT ?1, ${KEY.join(', ')}, ${names.map((name) => `SUM(${name}) AS ${name}`).join(', ')}
    FROM facts WHERE 1
    GROUP BY ${KEY.join(', ')}
    HAVING ${names.map((name) => `SUM(${name}) <> 0`).join(' OR ')}
    ON CONFLICT (site_id, ${KEY.join(', ')}) DO UPDATE SET
      ${names.map((name) => `${name} = ${name} + excluded.${name}`).join(', ')}`;
  const durations = `WITH ${factsCte(hoursOf(bucketSource), materialized)}
    INSERT INTO rollup_durations (site_id, ${DURATION_KEY.join(', ')}, n)
    SELECT ?1, goal_id, version, dim, hour, prev_hour, next_hour, facts.value, j.key + 2,
      j.value, SUM(sign)
    FROM facts, json_each(facts.duration_buckets) j WHERE j.value IS NOT NULL
    GROUP BY goal_id, version, dim, hour, prev_hour, next_hour, facts.value, j.key, j.value
    HAVING SUM(sign) <> 0
    ON CONFLICT (site_id, ${DURATION_KEY.join(', ')}) DO UPDATE SET n = n + excluded.n`;
  return [counts, durations];
}

/** Statements that drop rollup rows a signed-negative source may have brought to zero. */
function cleanupStatements(source: string, bucketSource = source): string[] {
  const keyList = `(site_id, ${KEY.join(', ')})`;
  return [
    `DELETE FROM rollups WHERE n = 0 AND ${keyList} IN (
       WITH ${factsCte(hoursOf(source))} SELECT ?1, ${KEY.join(', ')} FROM facts)`,
    `DELETE FROM rollup_durations WHERE n = 0 AND
       (site_id, goal_id, version, dim, hour, prev_hour, next_hour, value, step, bucket) IN (
       WITH ${factsCte(hoursOf(bucketSource))} SELECT ?1, goal_id, version, dim, hour, prev_hour,
         next_hour, facts.value, j.key + 2, j.value
       FROM facts, json_each(facts.duration_buckets) j WHERE j.value IS NOT NULL)`,
  ];
}

const stored = (alias: string) => ATTEMPT_FIELDS.map((f) => `${alias}.${f}`).join(', ');

/** The fields the fold never reads: a log entry holds NULL there. */
const UNFOLDED_FIELDS: ReadonlySet<string> = new Set(['person_id', 'reached', 'entry_props']);
/** The times the fold reads only as hours (`hoursOf`). */
const HOUR_FIELDS: ReadonlySet<string> = new Set(['prev_ge', 'next_gt', 'close_at']);

/**
 * A row as its log entry holds it (a JSON array in ATTEMPT_FIELDS order, without the sign), from
 * an SQL expression per field. What the fold does not read is left out or cut to what it reads,
 * so rows the fold counts alike log alike and are summed into one entry (see LOG_SQL): no person,
 * reached step or entry properties; the hours of `prev_ge`, `next_gt` and `close_at`; and the
 * hour of `t1` when no later step was reached (with one, the fold takes the time from `t1`).
 */
function loggedEntry(field: (name: string) => string): string {
  const hour = (sql: string) => `(${sql}) / ${HOUR_MS} * ${HOUR_MS}`;
  const later = range(2, STEPS).map((k) => field(`t${k}`));
  const values = ATTEMPT_FIELDS.map((f) => {
    if (UNFOLDED_FIELDS.has(f)) return 'NULL';
    if (HOUR_FIELDS.has(f)) return hour(field(f));
    if (f === 't1') {
      return `CASE WHEN COALESCE(${later.join(', ')}) IS NULL THEN ${hour(field(f))}
        ELSE ${field(f)} END`;
    }
    return field(f);
  });
  return `json_array(${values.join(', ')})`;
}

/** A field of the written row `n.row` (JSON text in ATTEMPT_FIELDS order). */
const writtenField = (f: string) =>
  `(n.row ->> ${ATTEMPT_FIELDS.indexOf(f as (typeof ATTEMPT_FIELDS)[number])})`;

/**
 * Appends what a write changes to the log as one row, numbered ?2: stored rows the write does
 * not keep as they are (-1) and written rows not stored as they are (+1), as entries
 * [count, ...ATTEMPT_FIELDS] (`loggedEntry`), where rows that log alike are one entry whose count
 * is the sum of their signs, and an entry summing to zero is left out. Every sum the fold makes
 * is linear in the sign, so an entry counts as that many rows. On traffic of new one-event
 * visitors most of a write's rows log alike (an hour, a campaign, a browser): the log row
 * shrinks from every row written (the bytes of the attempts themselves, again) to a few entries
 * (docs/BENCHMARKS.md, session 10). A write that changes nothing appends nothing; a number already
 * in the log fails the batch (its unique key), whether or not the write changes anything. It
 * answers how many entries it logged (the fold's work: `FOLD_EVERY_ENTRIES`).
 *
 * Rows are compared as JSON texts: a stored row as SQLite's `json_array` of its columns, a
 * written row as the text the writer sent (JSON.stringify of its array). Both spell integers,
 * nulls and well-formed texts alike (review: control characters, U+2028, emoji, quotes and
 * backslashes; rollup-log.test.ts). A text with half an emoji does not read back as written
 * (SQLite stores it as invalid UTF-8), so segment values are cut on whole characters
 * (src/funnel/segment.ts) and a row drops the half an older event's segment kept
 * (src/funnel/progress-store.ts, `storedSegment`). Were some text ever spelled differently,
 * its row would be logged out and in again and rewritten as it is: a wasted write, never a
 * wrong rollup. DISTINCT: a scope or rows that name something twice change it once, as the
 * table keeps it once. Entries are built by SQLite from SQL values on both sides, so rows that
 * log alike spell alike.
 *
 * The stored rows are those of the (goal, version, person) triples of JSON parameter ?3; CROSS
 * JOIN makes SQLite loop over the triples and look each up by primary key: left to itself, it
 * cannot size json_each and scans the site's rows instead.
 */
const LOG_SQL = `WITH old AS (
    SELECT DISTINCT json_array(${stored('a')}) AS row, ${loggedEntry((f) => `a.${f}`)} AS entry
    FROM json_each(?3) s CROSS JOIN attempts a ON a.site_id = ?1
      AND a.goal_id = s.value ->> 0 AND a.version = s.value ->> 1
      AND a.person_id = s.value ->> 2),
  new AS (SELECT DISTINCT r.value AS row FROM json_each(?5) r),
  changed AS (
    SELECT -1 AS sign, entry FROM old WHERE row NOT IN (SELECT row FROM new)
    UNION ALL SELECT 1, ${loggedEntry(writtenField)} FROM new n
      WHERE n.row NOT IN (SELECT row FROM old)),
  summed AS (SELECT SUM(sign) AS count, entry FROM changed GROUP BY entry),
  logged AS (SELECT COUNT(*) AS n,
      '[' || COALESCE(group_concat('[' || count || ',' || substr(entry, 2), ','), '') || ']' AS rows
    FROM summed WHERE count <> 0)
  INSERT INTO rollup_log (site_id, seq, rows) SELECT ?1, ?2, rows FROM logged
  WHERE n > 0 OR EXISTS (SELECT 1 FROM rollup_log WHERE site_id = ?1 AND seq = ?2)
  RETURNING json_array_length(rows) AS entries`;

const LOG_SIGN = 'j.value ->> 0';
/**
 * Logged rows, signed, with their fields (the row's own columns: `FROM rollup_log l, ...`). The
 * sign of an entry is its count: every sum over it is `SUM(sign * …)`.
 */
const LOGGED = `${LOG_SIGN} AS sign,
    ${ATTEMPT_FIELDS.map((f, i) => `j.value ->> ${i + 1} AS ${f}`).join(', ')}`;
/** The site's (?1) logged rows. */
const LOG_ROWS = `SELECT ${LOGGED} FROM rollup_log l, json_each(l.rows) j WHERE l.site_id = ?1`;
const LOG_BUCKET_ROWS = `${LOG_ROWS}
  AND j.value ->> ${ATTEMPT_FIELDS.indexOf('duration_buckets') + 1} IS NOT NULL`;

/** Applies the site's (?1) log to the rollups and empties it: run as one batch, or inside one. */
const FOLD_SQL = [
  ...deltaStatements(LOG_ROWS, LOG_BUCKET_ROWS, true),
  ...cleanupStatements(`${LOG_ROWS} AND ${LOG_SIGN} < 0`, `${LOG_BUCKET_ROWS} AND ${LOG_SIGN} < 0`),
  'DELETE FROM rollup_log WHERE site_id = ?1',
];

/** The statements that fold the site's rollup log into its rollups (see the top of the file). */
export function foldLogStatements(db: D1Database, siteId: string): D1PreparedStatement[] {
  return FOLD_SQL.map((sql) => db.prepare(sql).bind(siteId));
}

const KEY_FIELDS = ['goal_id', 'version', 'person_id', 't1'] as const;

const REPLACE_SQL = (() => {
  const fields = ATTEMPT_FIELDS.join(', ');
  const keys = KEY_FIELDS.join(', ');
  const updated = ATTEMPT_FIELDS.filter((f) => !(KEY_FIELDS as readonly string[]).includes(f));
  // The written rows' keys (?4: [goal, version, person, t1] per row; the rows are ?5).
  const writtenKeys = `SELECT DISTINCT k.value ->> 0 AS goal_id, k.value ->> 1 AS version,
    k.value ->> 2 AS person_id, k.value ->> 3 AS t1 FROM json_each(?4) k`;
  // Written rows not stored as they are: the rows the log counted +1. Looked up by their key.
  const changedRows = `SELECT ${ATTEMPT_FIELDS.map((f) => `${writtenField(f)} AS ${f}`).join(', ')}
    FROM (SELECT DISTINCT value AS row FROM json_each(?5)) n
    WHERE NOT EXISTS (SELECT 1 FROM attempts a WHERE a.site_id = ?1
      AND a.goal_id = ${writtenField('goal_id')} AND a.version = ${writtenField('version')}
      AND a.person_id = ${writtenField('person_id')} AND a.t1 = ${writtenField('t1')}
      AND json_array(${stored('a')}) = n.row)`;
  return [
    LOG_SQL,
    // Stored rows of the scope whose key no written row has: their entry is gone. The whole key
    // on the left, so SQLite looks each row up by it (with the site alone it scans the site's
    // rows).
    `DELETE FROM attempts WHERE (site_id, ${keys}) IN (SELECT ?1, * FROM (
       SELECT a.goal_id, a.version, a.person_id, a.t1
       FROM json_each(?3) s CROSS JOIN attempts a ON a.site_id = ?1
         AND a.goal_id = s.value ->> 0 AND a.version = s.value ->> 1
         AND a.person_id = s.value ->> 2
       EXCEPT ${writtenKeys}))`,
    // The keys the write creates, listed by entry hour (the index by entry time), before the
    // upsert stores them.
    LIST_NEW_KEYS_SQL(writtenKeys),
    // Written rows: each differs from what is stored under its key, if anything is.
    `INSERT INTO attempts (site_id, ${fields})
       SELECT ?1, ${fields} FROM (${changedRows}) WHERE 1
       ON CONFLICT (site_id, ${keys}) DO UPDATE SET
         ${updated.map((f) => `${f} = excluded.${f}`).join(', ')}`,
  ];
})();

/** Binds the values a statement uses (?1..?N): D1 refuses values beyond them. */
function bindUsed(db: D1Database, sql: string, values: readonly unknown[]): D1PreparedStatement {
  const used = Math.max(0, ...[...sql.matchAll(/\?(\d+)/g)].map((m) => Number(m[1])));
  return db.prepare(sql).bind(...values.slice(0, used));
}

/** One attempt row for the writer: values in ATTEMPT_FIELDS order. */
export type AttemptJsonRow = Array<string | number | null>;

/**
 * A log row number: random (53 bits), since nothing depends on the log's order and clocks of
 * successive object instances need not agree; a repeat fails its batch (see LOG_SQL).
 */
export function randomSeq(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2)) as unknown as [number, number];
  return (high & 0x1fffff) * 2 ** 32 + low;
}

/**
 * The statements that replace the rows of some (goal, version, person) triples by new ones and
 * log the difference for the rollups, all in one batch. Five bound values at most, whatever the
 * number of rows: the triples, the rows' keys and the rows travel as JSON (D1 allows 100 per
 * statement); the rows go to the two statements that read them whole (the log and the upsert).
 */
export function replaceRowsStatements(
  db: D1Database,
  siteId: string,
  scope: ReadonlyArray<readonly [string, number, string]>,
  rows: readonly AttemptJsonRow[],
  seq = randomSeq(),
): D1PreparedStatement[] {
  // Two different rows for one attempt key would both be logged, and one stored: refused (the
  // writer sends each person's attempts once, one per entry time).
  const texts = new Map<string, string>();
  for (const row of rows) {
    const key = JSON.stringify(row.slice(0, KEY_FIELDS.length));
    const text = JSON.stringify(row);
    if ((texts.get(key) ?? text) !== text) {
      throw new Error(`two different rows for one attempt key ${key}`);
    }
    texts.set(key, text);
  }
  const scopeJson = JSON.stringify(scope);
  const keysJson = `[${[...texts.keys()].join(',')}]`;
  const rowsJson = `[${[...texts.values()].join(',')}]`;
  const values = [siteId, seq, scopeJson, keysJson, rowsJson];
  return REPLACE_SQL.map((sql) => bindUsed(db, sql, values));
}

/**
 * One person's rows on every goal version of the site (?1), person ?2, looked up by primary key
 * per version: `attempts` has no index by person (every index entry is a billed row written per
 * attempt, docs/BENCHMARKS.md), and versions are few. `cols` is the select list over `a`.
 */
export const personAttemptsSql = (cols: string) => `SELECT ${cols}
  FROM goal_versions g CROSS JOIN attempts a ON a.site_id = g.site_id AND a.goal_id = g.goal_id
    AND a.version = g.version AND a.person_id = ?2
  WHERE g.site_id = ?1`;

/** The rows of one person on every goal version, with their rollup contributions. */
const PERSON_ROWS = personAttemptsSql(`-1 AS sign, ${stored('a')}`);

/**
 * Statements that delete every row of one person and take them out of the rollups, after folding
 * the log (whose rows may hold the person's).
 */
export function erasePersonStatements(
  db: D1Database,
  siteId: string,
  personId: string,
): D1PreparedStatement[] {
  return [
    ...FOLD_SQL,
    ...deltaStatements(PERSON_ROWS),
    ...cleanupStatements(PERSON_ROWS),
    `DELETE FROM attempts WHERE site_id = ?1 AND person_id = ?2
       AND (goal_id, version) IN (SELECT goal_id, version FROM goal_versions WHERE site_id = ?1)`,
  ].map((sql) => bindUsed(db, sql, [siteId, personId]));
}

/** All rows of one goal version, each counted once. */
const VERSION_ROWS = `SELECT 1 AS sign, ${stored('a')} FROM attempts a
  WHERE a.site_id = ?1 AND a.goal_id = ?2 AND a.version = ?3`;

/**
 * The one "rebuild rollups from attempts" SQL: folds the site's log (it holds every version's
 * changes), wipes a goal version's rollups, aggregates its rows again and records the version as
 * built. Used when a version's rebuild finishes and by the benchmark's bulk loader (as plain
 * SQL, see `rebuildRollupsSql`).
 */
export function rebuildRollupsSql(): string[] {
  const scope = 'site_id = ?1 AND goal_id = ?2 AND version = ?3';
  return [
    ...FOLD_SQL,
    `DELETE FROM rollups WHERE ${scope}`,
    `DELETE FROM rollup_durations WHERE ${scope}`,
    ...deltaStatements(VERSION_ROWS),
    ...RELIST_VERSION_SQL,
    `INSERT INTO rollup_versions (site_id, goal_id, version, built_at) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (site_id, goal_id, version) DO UPDATE SET built_at = excluded.built_at`,
  ];
}

/** Rebuilds the rollups of goal versions from their rows, one batch (transaction) each. */
export async function rebuildRollups(
  db: D1Database,
  siteId: string,
  versions: ReadonlyArray<{ id: string; version: number }>,
  now: number,
): Promise<void> {
  for (const v of versions) {
    await db.batch(
      rebuildRollupsSql().map((sql) => bindUsed(db, sql, [siteId, v.id, v.version, now])),
    );
  }
}
