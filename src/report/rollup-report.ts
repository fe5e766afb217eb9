/**
 * The report from rollups (docs/METRICS.md, "Rollups"): counted attempts of an hour-aligned range
 * are the rollup rows with `hour` in it, `prev_hour` before it and `next_hour` at or after its
 * end, so a report sums rows instead of grouping people. Its cost grows with the hours (and
 * segment values) in range, not with people or their events. What depends on `now` inside a
 * single hour (in progress, completion-within eligibility) is read exactly from those few
 * attempts.
 */
import { HOUR_MS, withinBuckets } from '../funnel/attempt-facts';
import { listedPeople } from '../funnel/attempt-hours';
import type { Goal } from '../funnel/definition';
import { dimValueSql, foldLogStatements, NONE_VALUE, ROLLUP_MEASURES } from '../funnel/rollups';
import { SEGMENT_COLUMNS } from '../funnel/segment';
import { summaryOf, type FunnelSummary } from './metrics';
import type { ReportRange } from './range';
import { addSums, emptySums, overTimeFromHours, tallySums, type RollupSums } from './rollup-tally';
import type { BreakdownGroup, Interval } from './slices';

/**
 * People in range above which a report is answered from rollups (`ROLLUP_MIN_PEOPLE` overrides
 * it). Below it the per-person path answers: exact time percentiles, and fast enough.
 */
export const ROLLUP_MIN_PEOPLE = 50_000;

/** The threshold in force: `ROLLUP_MIN_PEOPLE` when set to a whole number, else the default. */
export function rollupMinPeople(env: { ROLLUP_MIN_PEOPLE?: string }): number {
  const set = env.ROLLUP_MIN_PEOPLE?.trim();
  return set && /^\d+$/.test(set) ? Number(set) : ROLLUP_MIN_PEOPLE;
}

/** A report's numbers, whichever path computed them. */
export interface AggregatedFunnel {
  summary: FunnelSummary;
  overTime: Array<{ bucket: string; entered: number; completed: number }>;
  groups: BreakdownGroup[] | null;
}

/**
 * Whether rollups can answer a view at all: a breakdown by a segment column or none, no value
 * dedupe (it spans people), and range bounds on whole UTC hours.
 */
export function rollupServes(
  goal: Goal,
  view: { breakdown: string | null; filters: readonly unknown[] },
  range: ReportRange,
): boolean {
  // Filters restrict people by their entry segment: only the per-person rows carry it whole.
  if (view.filters.length > 0) return false;
  if (view.breakdown !== null && !Object.hasOwn(SEGMENT_COLUMNS, view.breakdown)) return false;
  if (goal.value?.dedupeBy) return false;
  return range.from % HOUR_MS === 0 && range.to % HOUR_MS === 0 && range.from >= 0;
}

type Row = Record<string, number | string | null>;

const num = (row: Row, key: string) => Number(row[key] ?? 0);

/**
 * The counted-attempt filter on stored rows, for the exact reads (?4 from, ?5 to). Each read adds
 * the people listed for its own entry times (`listedPeople`): its rows are found by key.
 */
const COUNTED = `site_id = ?1 AND goal_id = ?2 AND version = ?3 AND t1 >= ?4 AND t1 < ?5
  AND (prev_ge IS NULL OR prev_ge < ?4) AND (next_gt IS NULL OR next_gt >= ?5)`;

interface RollupReportInput {
  siteId: string;
  goal: Goal;
  range: ReportRange;
  view: { breakdown: string | null; top: number; interval: Interval };
  now: number;
  minPeople: number;
}

/** Rounds of reads tried before a report under constant writes is left to the per-person path. */
const ROLLUP_TRIES = 3;

/**
 * The report from rollups, or null when they cannot answer it: the version's rollups are not
 * built, fewer than `minPeople` people entered, or an hour of the range holds a local midnight.
 * Its two rounds of reads are two transactions: when a write lands between them (the second
 * round's sums differ from the first's), the report is read again, so every number comes from
 * one state; after `ROLLUP_TRIES` the per-person path answers.
 */
export async function queryRollupReport(
  db: D1Database,
  input: RollupReportInput,
): Promise<AggregatedFunnel | null> {
  for (let attempt = 0; attempt < ROLLUP_TRIES; attempt += 1) {
    const answer = await readRollupReport(db, input);
    if (answer !== 'moved') return answer;
  }
  return null;
}

/** One reading of `queryRollupReport`, or 'moved' when a write landed between its rounds. */
async function readRollupReport(
  db: D1Database,
  input: RollupReportInput,
): Promise<AggregatedFunnel | null | 'moved'> {
  const { goal, range, view, now } = input;
  const dim = view.breakdown ?? '';
  const from = range.from / HOUR_MS;
  const to = range.to / HOUR_MS;
  const nowHour = Math.floor(now / HOUR_MS);
  const within = withinBuckets(goal.windowMs);
  // Entries before this hour are `d` old for sure at `now`; those in it are read exactly.
  const edges = within.map(({ ms }) => Math.floor((now - ms + 1) / HOUR_MS));
  const keys = [input.siteId, goal.id, goal.version];
  // A dim's "no value" rows are not written (src/funnel/rollups.ts); any a fold of older code
  // left behind are not read either, so their count is never taken twice.
  const inRange = `site_id = ?1 AND goal_id = ?2 AND version = ?3 AND dim IN ('', ?4)
    AND hour >= ?5 AND hour < ?6 AND prev_hour < ?5 AND next_hour >= ?6
    AND (dim = '' OR value <> '${NONE_VALUE}')`;

  const sums = ROLLUP_MEASURES.map(([name]) => `SUM(${name}) AS ${name}`);
  const open = ['n', ...range2(2, 10).flatMap((k) => [`o${k}`, `p${k}`])].map(
    (name) => `SUM(CASE WHEN open_hour > ?7 THEN ${name} ELSE 0 END) AS open_${name}`,
  );
  const eligible = edges.map(
    (edge, i) =>
      `SUM(CASE WHEN hour < ${edge} THEN n - w${i} ELSE 0 END) AS eligible${i}, ` +
      `SUM(CASE WHEN hour = ${edge} THEN n - w${i} ELSE 0 END) AS edge${i}`,
  );
  // The rollup log is folded first, in the same transaction as the reads: the rollups then hold
  // every progress write so far (src/funnel/rollups.ts).
  const fold = foldLogStatements(db, input.siteId);
  // The sums per dim and value; read again in the second round, to tell whether it moved.
  const sumsByValue = () =>
    db
      .prepare(
        `SELECT dim, value, ${[...sums, ...open, ...eligible].join(', ')},
           SUM(CASE WHEN open_hour = ?7 THEN n ELSE 0 END) AS edge_open
         FROM rollups WHERE ${inRange} GROUP BY dim, value ORDER BY dim, value`,
      )
      .bind(...keys, dim, from, to, nowHour);
  const results = await db.batch<Row>([
    ...fold,
    db
      .prepare(
        `SELECT 1 AS built FROM rollup_versions
         WHERE site_id = ?1 AND goal_id = ?2 AND version = ?3`,
      )
      .bind(...keys),
    sumsByValue(),
  ]);
  const [built, main] = results.slice(fold.length);
  if (!built?.results.length) return null;
  const rows = main?.results ?? [];
  const totalRow = rows.find((r) => r.dim === '');
  const totalN = totalRow ? num(totalRow, 'n') : 0;
  if (totalN < input.minPeople) return null;

  // Breakdown groups: the top values by entrants (ties by value), the rest as `other`. "No
  // value" has no rows of its own (src/funnel/rollups.ts): its entrants are the total's less
  // the dim's values.
  const valued = rows
    .filter((r) => r.dim === dim && dim !== '' && num(r, 'n') > 0)
    .map((r) => ({ value: String(r.value), n: num(r, 'n') }));
  const noneN = totalN - valued.reduce((sum, g) => sum + g.n, 0);
  const ranked = [...valued, ...(dim !== '' && noneN > 0 ? [{ value: NONE_VALUE, n: noneN }] : [])]
    // Ties by value, "no value" ('') after every value, as the per-person path ranks them.
    .sort((a, b) => b.n - a.n || rankValues(a.value, b.value));
  const top = ranked.slice(0, view.top);
  const topJson = JSON.stringify(top.map((g) => g.value));

  // Second round: hourly entries, histograms, and the exact reads the hour of `now` needs.
  const lastRequired = lastRequiredStep(goal);
  const statements = [
    db
      .prepare(
        `SELECT hour, SUM(n) AS entered, SUM(c${lastRequired}) AS completed FROM rollups
         WHERE ${inRange.replace("dim IN ('', ?4)", "dim = ''")} GROUP BY hour`,
      )
      .bind(...keys, dim, from, to),
    db
      .prepare(
        `SELECT dim, CASE WHEN dim = '' OR value IN (SELECT value FROM json_each(?7))
             THEN value END AS grp, step, bucket, SUM(n) AS n
         FROM rollup_durations WHERE ${inRange} GROUP BY dim, grp, step, bucket`,
      )
      .bind(...keys, dim, from, to, topJson),
  ];
  const dimValue = dimValueSql(dim);
  const exactReads: Array<'open' | number> = [];
  if (totalRow && num(totalRow, 'edge_open') > 0) {
    const openSums = [
      'COUNT(*) AS open_n',
      ...range2(2, 10).flatMap((k) => [
        `SUM((open_mask >> ${k - 1}) & 1) AS open_o${k}`,
        `SUM((progress_mask >> ${k - 1}) & 1) AS open_p${k}`,
      ]),
    ];
    // In progress iff now < close_at; close_at is within the window of the entry, after it,
    // and exactly the window's end when no step has a window of its own.
    const stepWindows = goal.mode !== 'any' && goal.steps.some((s) => s.window);
    const edgeEnd = (nowHour + 1) * HOUR_MS;
    exactReads.push('open');
    statements.push(
      db
        .prepare(
          `SELECT ${dimValue} AS value, ${openSums.join(', ')} FROM attempts
           WHERE ${COUNTED} AND close_at > ?6 AND close_at < ?7 AND t1 > ?8 AND t1 < ?9
             AND ${listedPeople('MAX(?4, ?8)', 'MIN(?5, ?9)')}
           GROUP BY value`,
        )
        .bind(
          ...keys,
          range.from,
          range.to,
          now,
          edgeEnd,
          now - goal.windowMs,
          stepWindows ? edgeEnd : edgeEnd - goal.windowMs,
        ),
    );
  }
  within.forEach(({ ms }, i) => {
    const edge = edges[i] as number;
    if (!totalRow || num(totalRow, `edge${i}`) === 0) return;
    exactReads.push(i);
    statements.push(
      db
        .prepare(
          `SELECT ${dimValue} AS value, COUNT(*) AS n FROM attempts
           WHERE ${COUNTED} AND t1 >= ?6 AND t1 < ?7 AND t1 <= ?8 AND ((done_mask >> ?9) & 1) = 0
             AND ${listedPeople('MAX(?4, ?6)', 'MIN(?5, ?7)')}
           GROUP BY value`,
        )
        .bind(...keys, range.from, range.to, edge * HOUR_MS, (edge + 1) * HOUR_MS, now - ms, i),
    );
  });
  // Folded again first: a write between the two rounds must reach both the rollups and the
  // exact reads of attempts, or neither (an empty log folds in no time); the sums read again
  // tell whether one did.
  const second = foldLogStatements(db, input.siteId);
  const [again, hours, hist, ...exact] = (
    await db.batch<Row>([...second, sumsByValue(), ...statements])
  ).slice(second.length);
  if (JSON.stringify(again?.results) !== JSON.stringify(rows)) return 'moved';

  const overTime = overTimeFromHours(
    (hours?.results ?? []).map((r) => ({
      hour: num(r, 'hour'),
      entered: num(r, 'entered'),
      completed: num(r, 'completed'),
    })),
    range.tz,
    view.interval,
  );
  if (!overTime) return null;

  // Sums per group: '' for the total, `v:<value>` for a shown group (`v:` for no value), null
  // for `other`.
  const groupOf = (d: string, value: string): string | null =>
    d === '' ? '' : top.some((g) => g.value === value) ? `v:${value}` : null;
  const groups = new Map<string | null, RollupSums>();
  const sumsOf = (key: string | null) => {
    let found = groups.get(key);
    if (!found) {
      found = emptySums();
      groups.set(key, found);
    }
    return found;
  };
  for (const row of rows) {
    if (row.dim !== '' && row.dim !== dim) continue;
    addSums(sumsOf(groupOf(String(row.dim), String(row.value))), rowSums(row, within.length));
  }
  for (const row of hist?.results ?? []) {
    const key = row.dim === '' ? '' : row.grp === null ? null : `v:${String(row.grp)}`;
    const map = sumsOf(key).hist[num(row, 'step') - 1] as Map<number, number>;
    map.set(num(row, 'bucket'), (map.get(num(row, 'bucket')) ?? 0) + num(row, 'n'));
  }
  if (dim !== '') {
    // "No value": the total less every value of the dim, into its own group or `other`.
    const none = addSums(emptySums(), sumsOf(''));
    for (const [key, sums] of groups) if (key !== '') addSums(none, sums, -1);
    addSums(sumsOf(groupOf(dim, NONE_VALUE)), none);
  }
  exact.forEach((result, j) => {
    const read = exactReads[j];
    for (const row of result.results) {
      const value = String(row.value);
      const targets = dim === '' ? [''] : ['', groupOf(dim, value)];
      for (const key of targets) {
        const s = sumsOf(key);
        if (read === 'open') {
          s.openN += num(row, 'open_n');
          for (let k = 2; k <= 10; k += 1) {
            s.openO[k - 1] = (s.openO[k - 1] ?? 0) + num(row, `open_o${k}`);
            s.openP[k - 1] = (s.openP[k - 1] ?? 0) + num(row, `open_p${k}`);
          }
        } else if (read !== undefined) {
          s.eligibleNotDone[read] = (s.eligibleNotDone[read] ?? 0) + num(row, 'n');
        }
      }
    }
  });

  const summary = summaryOf(goal, tallySums(goal, groups.get('') ?? emptySums()));
  let shown: AggregatedFunnel['groups'] = null;
  if (view.breakdown) {
    shown = top.map((g) => ({
      value: g.value === NONE_VALUE ? null : g.value,
      kind: g.value === NONE_VALUE ? ('none' as const) : ('value' as const),
      ...summaryOf(goal, tallySums(goal, groups.get(`v:${g.value}`) ?? emptySums())),
    }));
    if (ranked.length > top.length) {
      shown.push({
        value: null,
        kind: 'other',
        ...summaryOf(goal, tallySums(goal, groups.get(null) ?? emptySums())),
      });
    }
  }
  return { summary, overTime, groups: shown };
}

/** Value order of the per-person path: code units, no value ('') last. */
function rankValues(a: string, b: string): number {
  if (a === b) return 0;
  if (a === NONE_VALUE) return 1;
  if (b === NONE_VALUE) return -1;
  return a < b ? -1 : 1;
}

function range2(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** 1-based index of the goal's last required step. */
function lastRequiredStep(goal: Goal): number {
  let last = 1;
  goal.steps.forEach((s, k) => {
    if (!s.optional) last = k + 1;
  });
  return last;
}

/** One main-query row as sums (eligible counts of edge hours are added by the exact reads). */
function rowSums(row: Row, withinCount: number): RollupSums {
  const s = emptySums();
  s.n = num(row, 'n');
  s.openN = num(row, 'open_n');
  for (let k = 1; k <= 10; k += 1) {
    s.c[k - 1] = num(row, `c${k}`);
    s.v[k - 1] = num(row, `v${k}`);
    s.vn[k - 1] = num(row, `vn${k}`);
    if (k >= 2) {
      s.o[k - 1] = num(row, `o${k}`);
      s.p[k - 1] = num(row, `p${k}`);
      s.d[k - 1] = num(row, `d${k}`);
      s.openO[k - 1] = num(row, `open_o${k}`);
      s.openP[k - 1] = num(row, `open_p${k}`);
    }
  }
  for (let i = 0; i < withinCount; i += 1) {
    s.w[i] = num(row, `w${i}`);
    s.eligibleNotDone[i] = num(row, `eligible${i}`);
  }
  return s;
}
