/**
 * One person's data across every store, for the admin's export (right of access) and erasure
 * (right to erasure): D1 events, rejected and filtered events, progress rows and the site's
 * Durable Object storage. Who "the person" is comes from the identity rules in the site object
 * (docs/IDENTITY.md), so a shared device or a refused alias never pulls in another customer.
 */
import type { Env } from '../env';
import { unlistPeopleStatements } from '../funnel/attempt-hours';
import { erasePersonStatements, personAttemptsSql } from '../funnel/rollups';
import { anonymousKey, userKey } from '../identity/id-graph';
import type { PersonRecord } from '../identity/site-state-do';
import { ApiError } from '../lib/http-error';
import { personEventsStatement, type PersonEvents } from './event-packs';
import { raiseFloorSql } from './refused-store';

export interface PersonData {
  person: string;
  userIds: string[];
  anonymousIds: string[];
  events: Array<Record<string, unknown>>;
  rejected: Array<Record<string, unknown>>;
  attempts: Array<Record<string, unknown>>;
  stateEvents: Array<Record<string, unknown>>;
}

/** The site object's record of the person `id` names (a user id first, else a device id). */
async function personRecord(env: Env, siteId: string, id: string, erase: boolean) {
  const state = env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));
  const record =
    (await state.personRecord(siteId, { userId: id }, erase)) ??
    (await state.personRecord(siteId, { anonymousId: id }, erase));
  if (!record) throw new ApiError(404, 'person_not_found', 'no event carries that id');
  return record as PersonRecord;
}

/**
 * Refused events never reached the site object: they are the person's when their message id
 * is, or when their payload (maybe truncated JSON, so matched as text) names one of the
 * person's user ids. A device id alone is not enough: a shared device names two people.
 * Binds: ?1 the site, ?2 the message ids, ?3 the user ids.
 */
const PERSON_REFUSED = `site_id = ?1 AND (
  message_id IN (SELECT value FROM json_each(?2))
  OR (raw IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(?3) j
    WHERE instr(raw, json_quote(j.value)) > 0)))`;

/** The person's refused events, read or deleted. */
function refusedStatement(
  db: D1Database,
  siteId: string,
  record: PersonRecord,
  sql: string,
): D1PreparedStatement {
  // Id lists travel as one JSON parameter each (D1's 100-parameter limit, C32).
  return db
    .prepare(sql)
    .bind(siteId, JSON.stringify(record.messageIds), JSON.stringify(record.userIds));
}

/** The person's events as the packs hold them: keyed like the site object, in their hours. */
const personEvents = (record: PersonRecord): PersonEvents => ({
  events: record.stateEvents.map((row) => ({
    device: String(row.dev),
    messageId: String(row.message_id),
    ts: Number(row.ts),
  })),
});

/**
 * Statements that take a person's events out of the pending batch records (those the site object
 * has not taken), and drop records left empty: events with one of their user ids, or without a
 * user id from one of their devices. The first statement's row `n` counts them.
 * Binds: ?1 the site, ?2 the user ids, ?3 the device ids.
 */
function erasePendingStatements(
  db: D1Database,
  siteId: string,
  person: PersonRecord,
): D1PreparedStatement[] {
  const theirs = `(j.value ->> 4 IN (SELECT value FROM json_each(?2))
    OR (j.value ->> 4 IS NULL AND j.value ->> 3 IN (SELECT value FROM json_each(?3))))`;
  const holding = `site_id = ?1 AND events IS NOT NULL
    AND EXISTS (SELECT 1 FROM json_each(events) j WHERE ${theirs})`;
  const ids = (sql: string) =>
    db
      .prepare(sql)
      .bind(siteId, JSON.stringify(person.userIds), JSON.stringify(person.anonymousIds));
  return [
    ids(`SELECT COUNT(*) AS n FROM batches b, json_each(b.events) j
         WHERE b.site_id = ?1 AND ${theirs}`),
    ids(`UPDATE batches SET
           events = (SELECT json_group_array(json(j.value)) FROM json_each(events) j
             WHERE NOT ${theirs}),
           message_ids = (SELECT json_group_array(j.value ->> 0) FROM json_each(events) j
             WHERE NOT ${theirs})
         WHERE ${holding}`),
    db
      .prepare(
        `DELETE FROM batches WHERE site_id = ?1 AND events IS NOT NULL
           AND json_array_length(events) = 0`,
      )
      .bind(siteId),
  ];
}

/** Everything stored about the person, from every store. */
export async function exportPerson(env: Env, siteId: string, id: string): Promise<PersonData> {
  const record = await personRecord(env, siteId, id, false);
  const [events, rejected, attempts] = await env.DB.batch<Record<string, unknown>>([
    personEventsStatement(env.DB, siteId, personEvents(record)),
    refusedStatement(
      env.DB,
      siteId,
      record,
      `SELECT * FROM rejected_events WHERE ${PERSON_REFUSED}`,
    ),
    env.DB.prepare(personAttemptsSql('a.*')).bind(siteId, record.person),
  ]);
  return {
    person: record.person,
    userIds: record.userIds,
    anonymousIds: record.anonymousIds,
    events: events?.results ?? [],
    rejected: rejected?.results ?? [],
    attempts: attempts?.results ?? [],
    stateEvents: record.stateEvents,
  };
}

/**
 * Every id that names the person: their user and device ids, and the device ids on their own
 * events (a device split away from them still appears on the events they sent while on it).
 */
function namedIds(record: PersonRecord): string[] {
  const ids = new Set([...record.userIds, ...record.anonymousIds]);
  for (const row of record.stateEvents) if (typeof row.anon === 'string') ids.add(row.anon);
  return [...ids];
}

/** Deletes the person from every store; returns how many rows each store lost. */
export async function erasePerson(
  env: Env,
  siteId: string,
  id: string,
): Promise<{ events: number; rejected: number; attempts: number; stateEvents: number }> {
  // The progress rows are counted first: erasing in the object recomputes the people it moves,
  // which may delete this person's rows before the D1 delete below sees them.
  const found = await personRecord(env, siteId, id, false);
  const [pending, , , countedRows] = await env.DB.batch<{ n: number }>([
    // Their events in pending batch records go before the object's part: the reconciler could
    // otherwise hand them back to the object after it (then nothing would erase them).
    ...erasePendingStatements(env.DB, siteId, found),
    env.DB.prepare(personAttemptsSql('COUNT(*) AS n')).bind(siteId, found.person),
  ]);
  const counted = countedRows?.results[0];
  // The object next: once its rows are gone no later flush can rewrite the person's progress.
  const record = await personRecord(env, siteId, id, true);
  // The entry-time index of attempts names people by key: the person's, their users' and
  // devices' (a device's own key is listed from before it joined them). Keys of devices split
  // away from them are another person's now and stay.
  const personKeys = [
    record.person,
    ...record.userIds.map(userKey),
    ...record.anonymousIds.map(anonymousKey),
  ];
  // The object has erased the person's copies in D1's packs (in its own write order).
  const unlist = unlistPeopleStatements(env.DB, siteId, personKeys);
  const results = await env.DB.batch([
    ...unlist,
    // Before the delete, the floor: erasing the site's newest refused row must not free its id.
    refusedStatement(env.DB, siteId, record, raiseFloorSql(PERSON_REFUSED)),
    refusedStatement(env.DB, siteId, record, `DELETE FROM rejected_events WHERE ${PERSON_REFUSED}`),
    // People actions in the audit log name the ids they merged or split: the entry stays (who,
    // when, which action), its ids go. Matched as JSON text, like refused payloads above.
    env.DB.prepare(
      `UPDATE admin_audit SET detail =
         json_object('actionId', json_extract(detail, '$.actionId'), 'erased', json('true'))
       WHERE site_id = ?1 AND action IN ('person.merge', 'person.split', 'person.revert')
         AND EXISTS (SELECT 1 FROM json_each(?2) j WHERE instr(detail, json_quote(j.value)) > 0)`,
    ).bind(siteId, JSON.stringify(namedIds(record))),
    // Progress rows of versions the object no longer keeps leave the rollups with them.
    ...erasePersonStatements(env.DB, siteId, record.person),
  ]);
  const attempts = results.at(-1);
  return {
    events: (record.erasedEvents ?? 0) + (pending?.results[0]?.n ?? 0),
    // results[unlist.length] raised the refused-id floor.
    rejected: results[unlist.length + 1]?.meta.changes ?? 0,
    // Rows either the recompute or the delete removed (not both: the delete runs after).
    attempts:
      record.person === found.person
        ? Math.max(counted?.n ?? 0, attempts?.meta.changes ?? 0)
        : (attempts?.meta.changes ?? 0),
    stateEvents: record.messageIds.length,
  };
}
