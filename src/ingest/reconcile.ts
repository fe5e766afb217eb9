/**
 * The reconciler: finds ingest batches recorded in D1 that their site object has not taken (its
 * call failed before the answer, or `DEFER_APPLY` left them) and applies them from the events
 * the record holds. Applying is idempotent.
 */
import type { Env } from '../env';
import { stateBatch } from '../identity/state-batch';
import { logger } from '../lib/logger';
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
    `SELECT id, site_id, events FROM batches
     WHERE received_at < ? ORDER BY random() LIMIT ?`,
  )
    .bind(now - RECONCILE_AFTER_MS, BATCHES_PER_RUN)
    .all<{ id: string; site_id: string; events: string }>();

  // The batches go to their site objects together: an object gathers the batches that reach it
  // within its coalescing pause and writes them in one flush, instead of one pause per batch.
  const outcomes = await Promise.all(
    pending.map(async (batch) => {
      try {
        const events = recordedEvents(batch.events);
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
