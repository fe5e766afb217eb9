/** Share tokens: read-only access to one site's reports (optionally some goals). */
import { sha256Hex } from '../lib/crypto';

export interface Share {
  id: string;
  siteId: string;
  goalIds: string[] | null;
}

/**
 * Resolves a raw share token to its share, or null when it is unknown, revoked or expired. The
 * token is only ever compared by its hash.
 */
export async function findShare(db: D1Database, token: string, now: number): Promise<Share | null> {
  if (token.length < 16 || token.length > 200) return null;
  const row = await db
    .prepare(
      `SELECT id, site_id, goal_ids FROM shares
       WHERE token_hash = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`,
    )
    .bind(await sha256Hex(token), now)
    .first<{ id: string; site_id: string; goal_ids: string | null }>();
  if (!row) return null;
  return {
    id: row.id,
    siteId: row.site_id,
    goalIds: row.goal_ids ? (JSON.parse(row.goal_ids) as string[]) : null,
  };
}
