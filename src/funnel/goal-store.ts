/** Reads and writes goal definitions in D1. */
import {
  goalInputSchema,
  toEngineGoal,
  type Goal,
  type GoalDefinition,
  type GoalInput,
} from './definition';

/** A `goal_versions` row as the queries here select it. */
export interface GoalRow {
  id: string;
  version: number;
  name: string;
  definition: string;
  note: string | null;
  created_at: number;
  created_by?: string;
}

export interface StoredGoal extends Goal {
  note: string | null;
  window: string;
  createdAt: number;
  createdBy?: string;
  definition: GoalDefinition;
}

/** A stored goal version from its row. */
export function toGoal(row: GoalRow): StoredGoal {
  const raw = JSON.parse(row.definition) as GoalDefinition;
  // Stored before a field existed means its default: re-saving it must not make a new version.
  const parsed = goalInputSchema.safeParse({ ...raw, name: row.name });
  const definition = parsed.success ? definitionOf(parsed.data) : raw;
  return {
    ...toEngineGoal({ id: row.id, version: row.version, name: row.name }, definition),
    window: definition.window,
    definition,
    note: row.note,
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
}

/** The stored definition of a goal input: everything the engine reads, nothing else. */
export function definitionOf(goal: GoalInput): GoalDefinition {
  const { name: _name, note: _note, ...definition } = goal;
  return definition;
}

const CURRENT_GOALS = `SELECT g.id, v.version, v.name, v.definition, v.note, v.created_at
  FROM goals g JOIN goal_versions v
    ON v.site_id = g.site_id AND v.goal_id = g.id AND v.version = g.current_version
  WHERE g.site_id = ?`;

/** The current version of every goal of a site. */
export async function listCurrentGoals(db: D1Database, siteId: string): Promise<StoredGoal[]> {
  const { results } = await db
    .prepare(`${CURRENT_GOALS} ORDER BY g.id`)
    .bind(siteId)
    .all<GoalRow>();
  return results.map(toGoal);
}

/** The current version of one goal, or null. */
export async function getCurrentGoal(
  db: D1Database,
  siteId: string,
  goalId: string,
): Promise<StoredGoal | null> {
  const row = await db
    .prepare(`${CURRENT_GOALS} AND g.id = ?`)
    .bind(siteId, goalId)
    .first<GoalRow>();
  return row ? toGoal(row) : null;
}

/**
 * Saves a goal. An unchanged definition keeps its version; a changed one becomes the next
 * version, recorded with who made it and why. Returns the current version and whether it is new.
 */
export async function saveGoal(
  db: D1Database,
  input: { siteId: string; goalId: string; goal: GoalInput; createdBy: string; now: number },
): Promise<{ version: number; created: boolean }> {
  const definition = JSON.stringify(definitionOf(input.goal));
  const current = await getCurrentGoal(db, input.siteId, input.goalId);
  if (
    current &&
    current.name === input.goal.name &&
    JSON.stringify(current.definition) === definition
  ) {
    return { version: current.version, created: false };
  }

  const version = (current?.version ?? 0) + 1;
  await db.batch([
    db
      .prepare(
        `INSERT INTO goal_versions (site_id, goal_id, version, name, definition, note, created_by,
           created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(
        input.siteId,
        input.goalId,
        version,
        input.goal.name,
        definition,
        input.goal.note ?? null,
        input.createdBy,
        input.now,
      ),
    db
      .prepare(
        `INSERT INTO goals (site_id, id, current_version, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (site_id, id) DO UPDATE SET current_version = excluded.current_version`,
      )
      .bind(input.siteId, input.goalId, version, input.now),
  ]);
  return { version, created: true };
}

/** Every version of one goal, newest first, with who made it and why. */
export async function listGoalVersions(
  db: D1Database,
  siteId: string,
  goalId: string,
): Promise<StoredGoal[]> {
  const { results } = await db
    .prepare(
      `SELECT goal_id AS id, version, name, definition, note, created_at, created_by
       FROM goal_versions WHERE site_id = ? AND goal_id = ? ORDER BY version DESC`,
    )
    .bind(siteId, goalId)
    .all<GoalRow>();
  return results.map(toGoal);
}

/** One version of one goal, or null. */
export async function getGoalVersion(
  db: D1Database,
  siteId: string,
  goalId: string,
  version: number,
): Promise<StoredGoal | null> {
  const row = await db
    .prepare(
      `SELECT goal_id AS id, version, name, definition, note, created_at, created_by
       FROM goal_versions WHERE site_id = ? AND goal_id = ? AND version = ?`,
    )
    .bind(siteId, goalId, version)
    .first<GoalRow>();
  return row ? toGoal(row) : null;
}

/** Each goal's current and ready versions: what the site's progress must keep up to date. */
export async function listGoalStates(
  db: D1Database,
  siteId: string,
): Promise<Array<{ id: string; current: number; ready: number | null }>> {
  const { results } = await db
    .prepare(
      'SELECT id, current_version AS current, ready_version AS ready FROM goals WHERE site_id = ?',
    )
    .bind(siteId)
    .all<{ id: string; current: number; ready: number | null }>();
  return results;
}

/**
 * The versions whose progress the site keeps: every current version and, while one is being
 * rebuilt, the ready version the reports still show.
 */
export async function listLiveGoals(db: D1Database, siteId: string): Promise<StoredGoal[]> {
  const { results } = await db
    .prepare(
      `SELECT g.id, v.version, v.name, v.definition, v.note, v.created_at
       FROM goals g JOIN goal_versions v ON v.site_id = g.site_id AND v.goal_id = g.id
         AND (v.version = g.current_version OR v.version = g.ready_version)
       WHERE g.site_id = ? ORDER BY g.id, v.version`,
    )
    .bind(siteId)
    .all<GoalRow>();
  return results.map(toGoal);
}

/**
 * Marks the given versions' progress complete, never moving a goal back to an older one, and
 * only while the version is still the goal's current one: a version saved over during its
 * rebuild has incomplete rows (the walk went on with the newer definition), and the newer
 * version's own rebuild marks that one.
 */
export async function markReady(
  db: D1Database,
  siteId: string,
  versions: ReadonlyArray<{ id: string; version: number }>,
): Promise<void> {
  if (versions.length === 0) return;
  const update = db.prepare(
    `UPDATE goals SET ready_version = ?3 WHERE site_id = ?1 AND id = ?2
       AND current_version = ?3 AND (ready_version IS NULL OR ready_version < ?3)`,
  );
  await db.batch(versions.map((v) => update.bind(siteId, v.id, v.version)));
}
