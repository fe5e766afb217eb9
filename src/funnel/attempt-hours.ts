/**
 * The attempts' index by entry time, packed (`attempt_hours`, migration 0014). D1 bills every
 * index entry as a row written, so an index on `t1` cost a row per new attempt; instead, each
 * progress write lists, per goal version and hour of `t1`, the people it created an attempt key
 * for (an attempt key, once listed, stays listed while it lives: a write that only updates a row
 * lists nothing). Readers by entry time take the listed people of the hours and look their rows
 * up by primary key, then filter on `t1`.
 *
 * A person may be listed in hours where they no longer have an attempt (its key moved, or their
 * device joined a user) or more than once: readers use `person_id IN (…)`, which counts each
 * person once, and filter rows on `t1`. An erasure takes the person's keys out of every listing
 * (`unlistPeopleStatements`). Listings grow with attempt keys created, not with events per person.
 */
import { jsonArrayWithout } from '../lib/json-lists';
import { HOUR_MS } from './attempt-facts';

/**
 * Statements that take person keys (?2, a JSON array) out of a site's (?1) listing rows, and drop
 * rows left empty: an erasure's, so no listing keeps an erased person's ids. They read the site's
 * listing rows whole (an admin action, rare).
 */
export function unlistPeopleStatements(
  db: D1Database,
  siteId: string,
  personKeys: readonly string[],
): D1PreparedStatement[] {
  return [
    `UPDATE attempt_hours SET persons = ${jsonArrayWithout('persons', '?2')}
     WHERE site_id = ?1 AND EXISTS (SELECT 1 FROM json_each(persons) j
       WHERE j.value IN (SELECT value FROM json_each(?2)))`,
  ]
    .map((sql) => db.prepare(sql).bind(siteId, JSON.stringify(personKeys)))
    .concat(
      db
        .prepare('DELETE FROM attempt_hours WHERE site_id = ? AND json_array_length(persons) = 0')
        .bind(siteId),
    );
}

/**
 * `person_id IN (…)`: the people listed for goal version (?1 site, ?2 goal, ?3 version) in the
 * hours that meet [from, to); `from` and `to` are SQL expressions.
 */
export function listedPeople(from: string, to: string): string {
  return `person_id IN (SELECT j.value FROM attempt_hours h CROSS JOIN json_each(h.persons) j
    WHERE h.site_id = ?1 AND h.goal_id = ?2 AND h.version = ?3
      AND h.hour > ${from} - ${HOUR_MS} AND h.hour < ${to})`;
}

/**
 * A listing row whose key is taken already (a write's random number equal to another's, or to a
 * rebuild's chunk number, in the same hour: unlikely, never silent) takes both lists.
 */
const MERGE_LISTS = `ON CONFLICT (site_id, goal_id, version, hour, seq) DO UPDATE SET
    persons = (SELECT json_group_array(value) FROM (SELECT value FROM json_each(persons)
      UNION SELECT value FROM json_each(excluded.persons)))`;

/**
 * The listing statement of a progress write, to run after its delete of vanished keys and before
 * its upsert: (site ?1, write ?2) the written rows' keys not stored yet, grouped by goal version
 * and hour. `written` selects `goal_id, version, person_id, t1` of the written rows.
 */
export const LIST_NEW_KEYS_SQL = (written: string) => `INSERT INTO attempt_hours
    (site_id, goal_id, version, hour, seq, persons)
  SELECT ?1, w.goal_id, w.version, (w.t1 / ${HOUR_MS}) * ${HOUR_MS} AS hour, ?2,
    json_group_array(DISTINCT w.person_id)
  FROM (${written}) w
  WHERE NOT EXISTS (SELECT 1 FROM attempts a WHERE a.site_id = ?1 AND a.goal_id = w.goal_id
    AND a.version = w.version AND a.person_id = w.person_id AND a.t1 = w.t1)
  GROUP BY w.goal_id, w.version, hour
  ${MERGE_LISTS}`;

/**
 * People per listing row a rebuild writes at most: D1 caps a value at 2 MB, and an hour of a
 * large site can hold more entering people than one row takes.
 */
export const RELIST_CHUNK = 2000;

/**
 * A rebuild's listing of goal version (?1, ?2, ?3): every stored row, as seq 0, 1, … (one per
 * `RELIST_CHUNK` people of an hour). Also the shape of migration 0014's listing of stored rows.
 */
export const RELIST_VERSION_SQL = [
  'DELETE FROM attempt_hours WHERE site_id = ?1 AND goal_id = ?2 AND version = ?3',
  `INSERT INTO attempt_hours (site_id, goal_id, version, hour, seq, persons)
     SELECT ?1, ?2, ?3, hour, n / ${RELIST_CHUNK}, json_group_array(person_id)
     FROM (SELECT hour, person_id, ROW_NUMBER() OVER (PARTITION BY hour ORDER BY person_id) - 1 AS n
       FROM (SELECT DISTINCT (t1 / ${HOUR_MS}) * ${HOUR_MS} AS hour, person_id FROM attempts
         WHERE site_id = ?1 AND goal_id = ?2 AND version = ?3))
     GROUP BY hour, n / ${RELIST_CHUNK}`,
];
