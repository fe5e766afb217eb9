/**
 * The reconciler: finds ingest batches recorded in D1 that their site object has not taken (its
 * call failed before the answer, or `DEFER_APPLY` left them) and applies them from the events
 * the record holds. Applying is idempotent.
 */
import type { Env } from '../env';
import { stateBatch } from '../identity/state-batch';
import { logger } from '../lib/logger';
import { entryEvent } from './event-packs';
import { recordedEvents } from './event-store';

/** A batch younger than this may still be in flight and is left alone. */
export const RECONCILE_AFTER_MS = 60_000;
const BATCHES_PER_RUN = 50;

/**
 * Re-applies pending batches older than the grace period; returns how many were applied. Picks
 * them in random order, so a batch that keeps failing cannot starve the others.
 * TODO(soon): quarantine a batch after repeated failures (a failed_at column shown in status)
 * instead of retrying it every run; needs a migration.
 */
export async function reconcilePending(env: Env, now: number): Promise<number> {
  const { results: pending } = await env.DB.prepare(
    // Every row is pending (the site object deletes a batch's record once applied), so the
    // table stays small and is read without an index.
    `SELECT id, site_id, message_ids, events FROM batches
     WHERE received_at < ? ORDER BY random() LIMIT ?`,
  )
    .bind(now - RECONCILE_AFTER_MS, BATCHES_PER_RUN)
    .all<{ id: string; site_id: string; message_ids: string; events: string | null }>();

  // The batches go to their site objects together: an object gathers the batches that reach it
  // within its coalescing pause and writes them in one flush, instead of one pause per batch.
  const outcomes = await Promise.all(
    pending.map(async (batch) => {
      try {
        const events =
          batch.events === null
            ? await legacyEvents(env.DB, batch.site_id, batch.id, batch.message_ids)
            : recordedEvents(batch.events);
        const state = env.SITE_STATE.get(env.SITE_STATE.idFromName(batch.site_id));
        await state.apply(batch.site_id, batch.id, stateBatch(events));
        return true;
      } catch (error) {
        logger.error('reconcile.apply_failed', {
          site: batch.site_id,
          batch: batch.id,
          cause: error,
        });
        return false;
      }
    }),
  );
  const applied = outcomes.filter(Boolean).length;
  if (pending.length > 0) logger.info('reconcile.done', { pending: pending.length, applied });
  return applied;
}

/**
 * The events of a record left pending across migration 0016, which holds only their message
 * ids: from the packs the migration made of its events (batch id, or `<id>.<part>`). A scan of
 * the site's packs, for those few records only.
 */
async function legacyEvents(db: D1Database, siteId: string, batchId: string, ids: string) {
  const { results } = await db
    .prepare(
      `SELECT j.value AS entry FROM event_packs h CROSS JOIN json_each(h.events) j
       WHERE h.site_id = ?1 AND (h.batch_id = ?2 OR h.batch_id LIKE ?2 || '.%')
         AND j.value ->> 0 IN (SELECT value FROM json_each(?3))`,
    )
    .bind(siteId, batchId, ids)
    .all<{ entry: string }>();
  return results.map((row) => entryEvent(JSON.parse(row.entry) as unknown[]));
}
