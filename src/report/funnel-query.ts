/**
 * The report's D1 query: per person, the counted attempt that starts in the range (furthest
 * required step, then earliest; docs/METRICS.md). It reads progress rows only, so its cost grows
 * with people in range, not with their events.
 */
import { listedPeople } from '../funnel/attempt-hours';
import { SEGMENT_COLUMNS, type SegmentKey } from '../funnel/segment';
import type { CountedAttempt } from './metrics';

export { SEGMENT_COLUMNS, type SegmentKey } from '../funnel/segment';

/**
 * Whether a user-given name is one of the segment columns. An own-key check: `key in` would
 * also accept `constructor` or `__proto__`, inherited from Object.prototype.
 */
export const isSegmentColumn = (key: string): key is SegmentKey =>
  Object.hasOwn(SEGMENT_COLUMNS, key);

type Row = Record<string, number | string | null>;

/**
 * SQLite (and so D1) returns the bare columns of the row that holds the single MAX() of a
 * group; the score ranks by required steps reached, then by earliest start. Only the columns the
 * view needs are read: with tens of thousands of people, each one costs.
 */
function bestAttemptsSql(steps: number, extra: readonly string[]): string {
  const times = Array.from({ length: steps }, (_, i) => `t${i + 1}`);
  return `SELECT person_id, reached, ${[...times, ...extra].join(', ')},
      MAX(reached * 100000000000000000 - t1) AS score
    FROM attempts
    WHERE site_id = ?1 AND goal_id = ?2 AND version = ?3 AND t1 >= ?4 AND t1 < ?5
      AND ${listedPeople('?4', '?5')}
    GROUP BY person_id`;
}

/**
 * The columns beyond step times a view reads: step values, the columns of its breakdown and of
 * its filters' keys.
 */
export function extraColumns(view: {
  breakdown?: string | null;
  values?: boolean;
  filters?: readonly string[];
}): string[] {
  const extra = new Set<string>();
  if (view.values) extra.add('step_values');
  for (const by of [view.breakdown, ...(view.filters ?? [])]) {
    if (by && isSegmentColumn(by)) extra.add(SEGMENT_COLUMNS[by]);
    else if (by) extra.add('entry_props');
  }
  return [...extra];
}

/** The counted attempt of every person entering one goal version in `[from, to)`. */
export async function queryCountedAttempts(
  db: D1Database,
  input: {
    siteId: string;
    goalId: string;
    version: number;
    steps: number;
    from: number;
    to: number;
    /** The breakdown key, whose column (or the entry properties) must be read. */
    breakdown?: string | null;
    /** Whether the goal has a value property (step values must be read). */
    values?: boolean;
    /** The segment keys the view filters on. */
    filters?: readonly string[];
  },
): Promise<CountedAttempt[]> {
  const { results } = await db
    .prepare(bestAttemptsSql(input.steps, extraColumns(input)))
    .bind(input.siteId, input.goalId, input.version, input.from, input.to)
    .all<Row>();
  return results.map((row) => toCounted(row, input.steps));
}

/** Shapes one `attempts` row (or the same fields from the events path) for the metrics. */
export function toCounted(row: Row, steps: number): CountedAttempt {
  // No prototype: a tracked property named like an Object.prototype member stays plain data.
  const segment: Record<string, string | null> = Object.create(null);
  for (const [key, column] of Object.entries(SEGMENT_COLUMNS)) {
    segment[key] = (row[column] as string | null) ?? null;
  }
  const props =
    typeof row.entry_props === 'string'
      ? (JSON.parse(row.entry_props) as Record<string, unknown>)
      : {};
  for (const [key, value] of Object.entries(props)) segment[key] = String(value);
  return {
    personId: typeof row.person_id === 'string' ? row.person_id : undefined,
    times: Array.from({ length: steps }, (_, i) => {
      const t = row[`t${i + 1}`];
      return t === null || t === undefined ? null : Number(t);
    }),
    reached: Number(row.reached),
    segment,
    values:
      typeof row.step_values === 'string'
        ? (JSON.parse(row.step_values) as CountedAttempt['values'])
        : null,
  };
}
