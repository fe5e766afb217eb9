/**
 * The cron's volume recorder: hourly event counts per site and event name, by event time, for
 * the hours just behind `now`. Alerting on these series is built on top of them.
 */

/** Hours recounted on each run: late events of the last few hours still land in their bucket. */
export const RECOUNT_HOURS = 3;
const HOUR_MS = 3_600_000;

/** Recounts the last hours of every site's events into `step_volumes`; returns rows written. */
export async function recordStepVolumes(db: D1Database, now: number): Promise<number> {
  const since = Math.floor(now / HOUR_MS) * HOUR_MS - RECOUNT_HOURS * HOUR_MS;
  const result = await db
    .prepare(
      `INSERT INTO step_volumes (site_id, event, hour, count, updated_at)
       SELECT site_id, event, (ts / ${HOUR_MS}) * ${HOUR_MS} AS hour, COUNT(*), ?1
       FROM events
       WHERE ts >= ?2 AND ts < ?1 AND event IS NOT NULL AND site_id IN (SELECT id FROM sites)
       GROUP BY site_id, event, hour
       ON CONFLICT (site_id, event, hour) DO UPDATE
         SET count = excluded.count, updated_at = excluded.updated_at`,
    )
    .bind(now, since)
    .run();
  return result.meta.changes;
}
