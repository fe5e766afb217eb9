/**
 * The events' time index, packed (`event_hours`, migration 0013). D1 bills every index entry as
 * a row written, so an index on event time cost a row per event; instead, each request writes one
 * row per hour of event time listing the message ids it stored first. Readers by time select the
 * hours' rows and join their ids back to `events` by primary key.
 *
 * A listed id joins only the event row its own request stored (`batch_id`): an erasure takes ids
 * out of their rows, and should any deleted event be stored again by a later request, an older
 * row still listing it cannot count it a second time.
 */

import { jsonArrayWithout } from '../lib/json-lists';
import { HOUR_MS } from '../lib/units';

/**
 * The statement, run in the same D1 batch right after the events' insert, that lists the events
 * request `batchId` stored first: those whose row carries its batch id (a retry's duplicates keep
 * their first request's). One row per hour of event time.
 */
export function eventHoursStatement(
  db: D1Database,
  siteId: string,
  batchId: string,
  messageIds: readonly string[],
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT OR IGNORE INTO event_hours (site_id, hour, batch_id, ids)
       SELECT ?1, (e.ts / ${HOUR_MS}) * ${HOUR_MS} AS hour, ?2, json_group_array(e.message_id)
       FROM json_each(?3) j CROSS JOIN events e ON e.site_id = ?1 AND e.message_id = j.value
       WHERE e.batch_id = ?2
       GROUP BY hour`,
    )
    .bind(siteId, batchId, JSON.stringify(messageIds));
}

/**
 * A subquery of the `events` rows with event time in [from, to) of the sites `site` selects.
 * `site` is a condition on `h.site_id` (`h.site_id = ?1`, `h.site_id IN (…)`); `from` and `to`
 * are SQL expressions (parameters). Use it as a table: `FROM ${eventsByTime(…)} AS events`.
 */
export function eventsByTime(site: string, from: string, to: string): string {
  return `(SELECT e.* FROM event_hours h CROSS JOIN json_each(h.ids) j
      CROSS JOIN events e ON e.site_id = h.site_id AND e.message_id = j.value
        AND e.batch_id = h.batch_id
    WHERE ${site} AND h.hour > ${from} - ${HOUR_MS} AND h.hour < ${to}
      AND e.ts >= ${from} AND e.ts < ${to})`;
}

/**
 * Statements that delete a site's (?1) events from before ?2 and the index rows of the hours
 * wholly before it; an hour the cutoff splits keeps its row until a later purge (its deleted ids
 * no longer join). The first statement's `changes` is the events deleted.
 */
export function purgeEventsBeforeStatements(
  db: D1Database,
  siteId: string,
  cutoff: number,
): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `DELETE FROM events WHERE site_id = ?1 AND ts < ?2 AND message_id IN (
           SELECT j.value FROM event_hours h CROSS JOIN json_each(h.ids) j
           WHERE h.site_id = ?1 AND h.hour < ?2)`,
      )
      .bind(siteId, cutoff),
    db
      .prepare(`DELETE FROM event_hours WHERE site_id = ?1 AND hour <= ?2 - ${HOUR_MS}`)
      .bind(siteId, cutoff),
  ];
}

/**
 * Statements, run before the events' delete in the same batch, that take erased events (site
 * ?1, message ids in the JSON array ?2) out of the index rows listing them, and drop rows left
 * empty. The rows are found by key from the events themselves.
 */
export function unlistEventsStatements(
  db: D1Database,
  siteId: string,
  messageIds: readonly string[],
): D1PreparedStatement[] {
  const listing = `site_id = ?1 AND (hour, batch_id) IN (
      SELECT (ts / ${HOUR_MS}) * ${HOUR_MS}, batch_id FROM events
      WHERE site_id = ?1 AND message_id IN (SELECT value FROM json_each(?2)))`;
  return [
    `UPDATE event_hours SET ids = ${jsonArrayWithout('ids', '?2')} WHERE ${listing}`,
    `DELETE FROM event_hours WHERE ${listing} AND json_array_length(ids) = 0`,
  ].map((sql) => db.prepare(sql).bind(siteId, JSON.stringify(messageIds)));
}
