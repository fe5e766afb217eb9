/** Share tokens: read-only access to one site's reports (optionally some goals). */
import { toGoal, type GoalRow, type StoredGoal } from '../funnel/goal-store';
import { sha256Hex } from '../lib/crypto';
import { memoize } from '../lib/memo';

export interface Share {
  id: string;
  siteId: string;
  goalIds: string[] | null;
}

/** What a report request needs before its cache lookup, read in one D1 round trip. */
export interface ReportTarget {
  share: Share;
  /** The goal's current and newest complete versions; null when the site has no such goal. */
  state: { current: number; ready: number | null } | null;
  /** The version asked for, else the newest complete one; null when it does not exist. */
  goal: StoredGoal | null;
}

/** A token's hash, remembered per isolate: a cached report's hit repeats it on every view. */
const tokenHash = memoize((token) => sha256Hex(token));

/**
 * The share of a raw token joined with the goal's state and the version to show, or null when
 * the token is unknown, revoked or expired. One query: a cached report costs one D1 read.
 */
export async function findReportTarget(
  db: D1Database,
  input: { token: string; goalId: string; version: number | null; now: number },
): Promise<ReportTarget | null> {
  if (input.token.length < 16 || input.token.length > 200) return null;
  const row = await db
    .prepare(
      `SELECT s.id AS share_id, s.site_id, s.goal_ids, g.current_version AS current,
         g.ready_version AS ready, v.goal_id AS id, v.version, v.name, v.definition, v.note,
         v.created_at, v.created_by
       FROM shares s
       LEFT JOIN goals g ON g.site_id = s.site_id AND g.id = ?3
       LEFT JOIN goal_versions v ON v.site_id = s.site_id AND v.goal_id = ?3
         AND v.version = COALESCE(?4, g.ready_version, g.current_version)
       WHERE s.token_hash = ?1 AND s.revoked_at IS NULL
         AND (s.expires_at IS NULL OR s.expires_at > ?2)`,
    )
    .bind(await tokenHash(input.token), input.now, input.goalId, input.version)
    .first<
      Partial<GoalRow> & {
        share_id: string;
        site_id: string;
        goal_ids: string | null;
        current: number | null;
        ready: number | null;
      }
    >();
  if (!row) return null;
  return {
    share: {
      id: row.share_id,
      siteId: row.site_id,
      goalIds: row.goal_ids ? (JSON.parse(row.goal_ids) as string[]) : null,
    },
    state: row.current === null ? null : { current: row.current, ready: row.ready },
    goal: row.id == null ? null : toGoal(row as GoalRow),
  };
}
