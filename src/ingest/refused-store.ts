/**
 * The store of refused and filtered events (`rejected_events`, migration 0015), written lean:
 * every b-tree entry is a billed D1 row, so the table is WITHOUT ROWID and keyed by
 * (site, received time, id), which serves its time-ordered reads (the admin list, the cron's
 * rejects per hour, the retention purge). A row writes itself and, only when the event had a
 * message id, its entry in the partial `rejected_site_message` index (the retry dedupe).
 *
 * Ids without AUTOINCREMENT's `sqlite_sequence` row: a new id is the received time in
 * milliseconds × 1000 plus a tiebreak, and always above every id the site has had. It is the
 * largest of the received time × 1000, the site's newest id + 1 and the site's floor + 1 (the
 * highest id deleted while it was the newest: whatever deletes refused rows raises it first, in
 * the same batch, with `raiseFloorSql`), so an id is never handed out twice, even after the
 * newest row is erased. Ids are unique within a site (the API addresses rows by site and id).
 *
 * The stored `received_at` is the id / 1000: the filing time, never earlier than the site's
 * previous refused row (past 1000 in one millisecond, or from a Worker whose clock is behind,
 * a row files at the newest time instead). Rows filed before 0015 keep their AUTOINCREMENT ids,
 * all below `LEGACY_ID_END`.
 */

/** Ids below this are AUTOINCREMENT's, from before migration 0015 (2^40: 12.7 days × 1000). */
export const LEGACY_ID_END = 2 ** 40;

/**
 * The statement that files one refused or filtered event. Binds: ?1 site, ?2 received time (ms),
 * ?3 code, ?4 path, ?5 message, ?6 raw, ?7 disposition, ?8 rule, ?9 message id. A retried
 * event is not filed twice: with a message id, it is filed only when that id is not filed yet
 * with the same disposition and code (events without one cannot be told from a retry).
 */
export function fileRefusedStatement(db: D1Database): D1PreparedStatement {
  // The site's newest id is the last row in key order that is not a legacy row: ids and
  // received times grow together, and a legacy id is below every new one. Only rows from the
  // received time on can hold an id at or above received time × 1000.
  // INDEXED BY: the key (site first) is a candidate too, and without statistics SQLite may walk
  // the site's rows by key (a plain SELECT of this condition does).
  return db.prepare(
    `INSERT INTO rejected_events
       (id, site_id, received_at, code, path, message, raw, disposition, rule, message_id)
     SELECT n.id, ?1, n.id / 1000, ?3, ?4, ?5, ?6, ?7, ?8, ?9
     FROM (SELECT MAX(
       CAST(?2 AS INTEGER) * 1000,
       COALESCE((SELECT id + 1 FROM rejected_events
         WHERE site_id = ?1 AND received_at >= CAST(?2 AS INTEGER) AND id >= ${LEGACY_ID_END}
         ORDER BY received_at DESC, id DESC LIMIT 1), 0),
       COALESCE((SELECT id + 1 FROM rejected_floor WHERE site_id = ?1), 0)) AS id) n
     WHERE ?9 IS NULL OR NOT EXISTS (SELECT 1 FROM rejected_events INDEXED BY rejected_site_message
       WHERE site_id = ?1 AND message_id = ?9 AND disposition = ?7 AND code = ?3)`,
  );
}

/**
 * The condition that picks a site's rows by id: ?1 the site, ?2 the ids as a JSON array. A
 * new id names its row's key (its received time is the id / 1000); a legacy id does not, so a
 * list with one is matched by reading the site's rows.
 */
export function rowsWithIds(ids: readonly number[]): string {
  if (ids.some((id) => id < LEGACY_ID_END)) {
    return 'site_id = ?1 AND id IN (SELECT value FROM json_each(?2))';
  }
  return 'site_id = ?1 AND (received_at, id) IN (SELECT value / 1000, value FROM json_each(?2))';
}

/**
 * The statement to run before deleting a site's refused rows that match `where` (?1 the site,
 * other parameters the caller's): when the site's newest row is among them, the site's floor
 * rises to its id. Not a trigger: D1 counts a trigger's writes in the delete's `changes`, which
 * the purge and the erasure report.
 */
export function raiseFloorSql(where: string): string {
  return `INSERT INTO rejected_floor (site_id, id)
    SELECT site_id, id FROM (SELECT * FROM rejected_events
      WHERE site_id = ?1 AND id >= ${LEGACY_ID_END} ORDER BY received_at DESC, id DESC LIMIT 1)
    WHERE ${where}
    ON CONFLICT (site_id) DO UPDATE SET id = MAX(id, excluded.id)`;
}
