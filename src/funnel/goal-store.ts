/** Reads and writes goal definitions in D1. */
import { parseWindow, type Goal, type GoalInput, type StepDefinition } from './definition';

interface GoalRow {
  id: string;
  version: number;
  name: string;
  definition: string;
  note: string | null;
  created_at: number;
}

export interface StoredGoal extends Goal {
  note: string | null;
  window: string;
  createdAt: number;
}

function toGoal(row: GoalRow): StoredGoal {
  const definition = JSON.parse(row.definition) as { steps: StepDefinition[]; window: string };
  return {
    id: row.id,
    version: row.version,
    name: row.name,
    steps: definition.steps,
    window: definition.window,
    windowMs: parseWindow(definition.window),
    note: row.note,
    createdAt: row.created_at,
  };
}

const CURRENT_GOALS = `SELECT g.id, v.version, v.name, v.definition, v.note, v.created_at
  FROM goals g JOIN goal_versions v
    ON v.site_id = g.site_id AND v.goal_id = g.id AND v.version = g.current_version
  WHERE g.site_id = ?`;

/** The current version of every goal of a site. */
export async function listCurrentGoals(db: D1Database, siteId: string): Promise<StoredGoal[]> {
  const { results } = await db.prepare(`${CURRENT_GOALS} ORDER BY g.id`).bind(siteId).all<GoalRow>();
  return results.map(toGoal);
}

/** The current version of one goal, or null. */
export async function getCurrentGoal(
  db: D1Database,
  siteId: string,
  goalId: string,
): Promise<StoredGoal | null> {
  const row = await db.prepare(`${CURRENT_GOALS} AND g.id = ?`).bind(siteId, goalId).first<GoalRow>();
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
  const definition = JSON.stringify({ steps: input.goal.steps, window: input.goal.window });
  const current = await getCurrentGoal(db, input.siteId, input.goalId);
  if (
    current &&
    current.name === input.goal.name &&
    JSON.stringify({ steps: current.steps, window: current.window }) === definition
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
