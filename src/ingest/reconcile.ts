/**
 * The reconciler: finds ingest batches stored in D1 that their site object has not taken (its
 * call failed before the answer, or `DEFER_APPLY` left them) and applies them. Applying is
 * idempotent.
 */
import type { Env } from '../env';
import { deviceKey, stateBatch } from '../identity/state-batch';
import { logger } from '../lib/logger';
import { eventsByTime } from './event-packs';
import { loadStored } from './event-store';

/** A batch younger than this may still be in flight and is left alone. */
export const RECONCILE_AFTER_MS = 60_000;
const BATCHES_PER_RUN = 50;
/**
 * The sweep compares the events of this much event time before the run: two 15-minute cron
 * periods with a margin, so every live event is compared at least once.
 */
export const SWEEP_MS = 40 * 60_000;
/** Events compared per object call. */
const SWEEP_CHUNK = 5_000;

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
    `SELECT id, site_id, message_ids FROM batches
     WHERE received_at < ? ORDER BY random() LIMIT ?`,
  )
    .bind(now - RECONCILE_AFTER_MS, BATCHES_PER_RUN)
    .all<{ id: string; site_id: string; message_ids: string }>();

  // The batches go to their site objects together: an object gathers the batches that reach it
  // within its coalescing pause and writes them in one flush, instead of one pause per batch.
  const outcomes = await Promise.all(
    pending.map(async (batch) => {
      const ids = JSON.parse(batch.message_ids) as string[];
      const events = await loadStored(env.DB, batch.site_id, { batchId: batch.id }, ids);
      try {
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
 * Hands each site object the recent events D1 holds and the object does not: a request whose D1
 * write committed but whose hand-over never ran (a timeout answered 503 that its sender did not
 * retry, a Worker stopped between the two). No record marks such a write, so the sweep compares:
 * the site's events of the last `SWEEP_MS` by event time (the packs of those hours), taken at
 * least `RECONCILE_AFTER_MS` ago, against the object's keys. An event whose own time is older
 * (a back-fill) is left to its sender's retry. Returns how many events were handed over.
 */
export async function sweepRecent(env: Env, now: number): Promise<number> {
  const { results: sites } = await env.DB.prepare('SELECT id FROM sites').all<{ id: string }>();
  let handed = 0;
  for (const { id: siteId } of sites) {
    try {
      const range = { from: now - SWEEP_MS, to: Number.MAX_SAFE_INTEGER };
      const { results } = await env.DB.prepare(
        `SELECT message_id, type, anonymous_id
         FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events WHERE received_at < ?4`,
      )
        .bind(siteId, range.from, range.to, now - RECONCILE_AFTER_MS)
        .all<{ message_id: string; type: string; anonymous_id: string | null }>();
      if (results.length === 0) continue;
      const state = env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));
      for (let start = 0; start < results.length; start += SWEEP_CHUNK) {
        const pairs = results
          .slice(start, start + SWEEP_CHUNK)
          .map(
            (r) =>
              [deviceKey({ type: r.type, anonymousId: r.anonymous_id }), r.message_id] as const,
          );
        const missing = await state.missing(pairs);
        if (missing.length === 0) continue;
        await state.receive(siteId, stateBatch(await loadStored(env.DB, siteId, range, missing)));
        handed += missing.length;
      }
    } catch (error) {
      logger.error('reconcile.sweep_failed', { site: siteId, cause: error });
    }
  }
  if (handed > 0) logger.info('reconcile.swept', { handed });
  return handed;
}
