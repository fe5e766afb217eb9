/**
 * The cron's volume recorder: hourly event counts per site and event name, by event time, for
 * the hours just behind `now`. Alerting on these series is built on top of them.
 */
import { eventsByTime } from '../ingest/event-packs';
import { HOUR_MS } from '../lib/units';

/** Hours recounted on each run: late events of the last few hours still land in their bucket. */
export const RECOUNT_HOURS = 3;

/**
 * The upsert of a count that saw events up to `counted_to`: it replaces a stored count only when
 * it saw at least as much of the hour. A run for a past time (a replay, a late cron) counts an
 * hour only up to its own time and so cannot overwrite a finished hour with a partial count.
 */
export const KEEP_FULLER_COUNT = `ON CONFLICT (site_id, event, hour) DO UPDATE
  SET count = excluded.count, updated_at = excluded.updated_at, counted_to = excluded.counted_to
  WHERE excluded.counted_to >= step_volumes.counted_to`;

/**
 * Recounts the last hours of every site's events, up to `now`, into `step_volumes`; returns
 * rows written.
 */
export async function recordStepVolumes(db: D1Database, now: number): Promise<number> {
  const since = Math.floor(now / HOUR_MS) * HOUR_MS - RECOUNT_HOURS * HOUR_MS;
  const result = await db
    .prepare(
      `INSERT INTO step_volumes (site_id, event, hour, count, updated_at, counted_to)
       SELECT site_id, event, (ts / ${HOUR_MS}) * ${HOUR_MS} AS hour, COUNT(*), ?1,
         MIN((ts / ${HOUR_MS}) * ${HOUR_MS} + ${HOUR_MS}, ?1)
       FROM ${eventsByTime('h.site_id IN (SELECT id FROM sites)', '?2', '?1')} AS events
       WHERE event IS NOT NULL
       GROUP BY site_id, event, hour
       ${KEEP_FULLER_COUNT}`,
    )
    .bind(now, since)
    .run();
  return result.meta.changes;
}
