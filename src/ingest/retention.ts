/**
 * Per-site retention: the cron purges raw events and rejected and filtered events older than the
 * site's `retention_days` (batch records go as soon as they are applied; a pending one is kept
 * whatever its age, the reconciler still owes it an apply). Progress rows stay, so reports of
 * purged periods keep their numbers, but those periods can no longer be rebuilt for a new goal
 * version.
 */
import { logger } from '../lib/logger';

const DAY_MS = 86_400_000;

/**
 * The oldest event time a site keeps at `now`, or null when it keeps everything. Ingest refuses
 * older events on every path: the purge would delete them from D1, and a message id D1 no
 * longer holds can no longer be told apart from a new one (the site object keeps its copy).
 */
export function retainedFrom(now: number, retentionDays: number | null): number | null {
  return retentionDays === null ? null : now - retentionDays * DAY_MS;
}

/** A site's retention in days (null: keeps everything); undefined when there is no such site. */
export async function siteRetention(
  db: D1Database,
  siteId: string,
): Promise<number | null | undefined> {
  const row = await db
    .prepare('SELECT retention_days FROM sites WHERE id = ?')
    .bind(siteId)
    .first<{ retention_days: number | null }>();
  return row ? row.retention_days : undefined;
}

/** Purges what each site's retention period has expired; returns the rows deleted. */
export async function purgeExpired(db: D1Database, now: number): Promise<number> {
  const { results: sites } = await db
    .prepare('SELECT id, retention_days FROM sites WHERE retention_days IS NOT NULL')
    .all<{ id: string; retention_days: number }>();
  let deleted = 0;
  for (const site of sites) {
    const cutoff = now - site.retention_days * DAY_MS;
    const results = await db.batch([
      db.prepare('DELETE FROM events WHERE site_id = ? AND ts < ?').bind(site.id, cutoff),
      db
        .prepare('DELETE FROM rejected_events WHERE site_id = ? AND received_at < ?')
        .bind(site.id, cutoff),
    ]);
    const count = results.reduce((sum, result) => sum + (result.meta.changes ?? 0), 0);
    if (count > 0) logger.info('retention.purged', { site: site.id, rows: count });
    deleted += count;
  }
  return deleted;
}
