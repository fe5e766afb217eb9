/**
 * Per-site retention: the cron purges raw events and rejected and filtered events older than the
 * site's `retention_days` (batch records go as soon as they are applied; a pending one is kept
 * whatever its age, the reconciler still owes it an apply). Progress rows stay, so reports of
 * purged periods keep their numbers, but those periods can no longer be rebuilt for a new goal
 * version.
 */
import { ApiError } from '../lib/http-error';
import { logger } from '../lib/logger';
import { purgeEventsBeforeStatements } from './event-packs';
import { raiseFloorSql } from './refused-store';

const DAY_MS = 86_400_000;

/** A site's retention: days kept (null: everything) and how far a purge has deleted. */
export interface Retention {
  days: number | null;
  /** The newest cutoff a purge deleted events before, or null when none has run. */
  purgedBefore: number | null;
}

/**
 * The oldest event time a site accepts at `now`, or null when it keeps everything. Ingest refuses
 * older events on every path: the purge deletes them from D1, and a message id D1 no longer
 * holds can no longer be told apart from a new one (the site object keeps its copy). A purge's
 * cutoff stays in force when the retention is raised later, for the same reason.
 */
export function retainedFrom(now: number, retention: Retention): number | null {
  const kept = retention.days === null ? null : now - retention.days * DAY_MS;
  if (kept === null) return retention.purgedBefore;
  return retention.purgedBefore === null ? kept : Math.max(kept, retention.purgedBefore);
}

/** A site's retention, read with the check that the site exists (404 `site_not_found`). */
export async function requireRetention(db: D1Database, siteId: string): Promise<Retention> {
  const row = await db
    .prepare('SELECT retention_days, purged_before FROM sites WHERE id = ?')
    .bind(siteId)
    .first<{ retention_days: number | null; purged_before: number | null }>();
  if (!row) throw new ApiError(404, 'site_not_found', `no site ${siteId}`);
  return { days: row.retention_days, purgedBefore: row.purged_before };
}

/** Purges what each site's retention period has expired; returns the rows deleted. */
export async function purgeExpired(db: D1Database, now: number): Promise<number> {
  const { results: sites } = await db
    .prepare('SELECT id, retention_days FROM sites WHERE retention_days IS NOT NULL')
    .all<{ id: string; retention_days: number }>();
  let deleted = 0;
  for (const site of sites) {
    const cutoff = now - site.retention_days * DAY_MS;
    const purge = purgeEventsBeforeStatements(db, site.id, cutoff);
    const results = await db.batch<{ n?: number }>([
      ...purge,
      // The floor first: a purge of every row must not free the newest id (refused-store.ts).
      db.prepare(raiseFloorSql('received_at < ?2')).bind(site.id, cutoff),
      db
        .prepare('DELETE FROM rejected_events WHERE site_id = ?1 AND received_at < ?2')
        .bind(site.id, cutoff),
      // Ingest refuses events before this from now on, whatever the retention becomes.
      db
        .prepare(
          `UPDATE sites SET purged_before = MAX(COALESCE(purged_before, 0), ?2) WHERE id = ?1`,
        )
        .bind(site.id, cutoff),
    ]);
    // The purge's first statement counted its events; the refused rows' delete follows the floor.
    const events = results[0]?.results[0]?.n ?? 0;
    const count = events + (results[purge.length + 1]?.meta.changes ?? 0);
    if (count > 0) logger.info('retention.purged', { site: site.id, rows: count });
    deleted += count;
  }
  return deleted;
}
