/**
 * Writes people's attempts (progress rows) to D1. A person's rows for a goal version are
 * replaced whole, so a write always reflects the person's full, recomputed history.
 */
import type { Goal } from './definition';
import type { Attempt } from './engine';
import type { Segment } from './segment';

export interface PersonProgress {
  personId: string;
  /** Attempts per goal version (`goalKey`); absent means no attempts for the person. */
  attempts: Map<string, Array<Attempt & { segment: Segment }>>;
}

/** The key of one goal version in `PersonProgress.attempts`. */
export const goalKey = (goal: Pick<Goal, 'id' | 'version'>) => `${goal.id}#${goal.version}`;

/** D1 caps a batch's statements; chunks keep each call well inside it. */
const STATEMENTS_PER_BATCH = 200;

/** Entry properties and traits for breakdowns are capped: one odd event cannot bloat a row. */
const ENTRY_PROPS_MAX = 2000;

const STEP_COLUMNS = ['t2', 't3', 't4', 't5', 't6', 't7', 't8', 't9', 't10'] as const;

/** An attempt's columns of `attempts`, apart from its keys: what both report paths read. */
export type AttemptRow = Record<string, number | string | null>;

/** Shapes an attempt as its `attempts` row (minus site, goal, version and person). */
export function attemptRow(attempt: Attempt & { segment: Segment }): AttemptRow {
  const s = attempt.segment;
  // Breakdown keys as the report names them: `property:<name>` and `trait:<name>`, scalars only.
  const entry: Record<string, string | number | boolean> = {};
  const scalars = (prefix: string, bag: Record<string, unknown> | null) => {
    for (const [key, value] of Object.entries(bag ?? {})) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        entry[`${prefix}:${key}`] = value;
      }
    }
  };
  scalars('property', attempt.entry.type === 'identify' ? null : attempt.entry.properties);
  scalars('trait', attempt.entryTraits);
  const json = JSON.stringify(entry);
  const entryProps = json === '{}' || json.length > ENTRY_PROPS_MAX ? null : json;
  const row: AttemptRow = { t1: attempt.times[0] ?? null, reached: attempt.reached };
  STEP_COLUMNS.forEach((column, i) => {
    row[column] = attempt.times[i + 1] ?? null;
  });
  Object.assign(row, {
    utm_source: s.utmSource,
    utm_medium: s.utmMedium,
    utm_campaign: s.utmCampaign,
    referrer_domain: s.referrerDomain,
    device: s.device,
    browser: s.browser,
    os: s.os,
    country: s.country,
    step_values: attempt.values.some((v) => v !== null)
      ? JSON.stringify(attempt.values.map((v) => (v ? [v.value, v.order, v.messageId] : null)))
      : null,
    entry_props: entryProps,
  });
  return row;
}

const ROW_COLUMNS = [
  't1',
  'reached',
  ...STEP_COLUMNS,
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'referrer_domain',
  'device',
  'browser',
  'os',
  'country',
  'step_values',
  'entry_props',
];

/** Replaces the progress rows of the given people for the given goal versions. */
export async function writeProgress(
  db: D1Database,
  siteId: string,
  goals: readonly Goal[],
  people: readonly PersonProgress[],
): Promise<void> {
  const remove = db.prepare(
    'DELETE FROM attempts WHERE site_id = ? AND goal_id = ? AND version = ? AND person_id = ?',
  );
  // One row per statement: 25 bound values, under D1's limit of 100 per statement.
  const insert = db.prepare(
    `INSERT INTO attempts (site_id, goal_id, version, person_id, ${ROW_COLUMNS.join(', ')})
     VALUES (${Array.from({ length: ROW_COLUMNS.length + 4 }, () => '?').join(', ')})`,
  );

  const statements: D1PreparedStatement[] = [];
  for (const person of people) {
    for (const goal of goals) {
      statements.push(remove.bind(siteId, goal.id, goal.version, person.personId));
      for (const attempt of person.attempts.get(goalKey(goal)) ?? []) {
        const row = attemptRow(attempt);
        statements.push(
          insert.bind(
            siteId,
            goal.id,
            goal.version,
            person.personId,
            ...ROW_COLUMNS.map((column) => row[column] ?? null),
          ),
        );
      }
    }
  }
  for (let i = 0; i < statements.length; i += STATEMENTS_PER_BATCH) {
    await db.batch(statements.slice(i, i + STATEMENTS_PER_BATCH));
  }
}
