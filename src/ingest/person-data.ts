/**
 * One person's data across every store, found by any of their ids: D1 events, rejected and
 * filtered events, progress rows and the site's Durable Object storage. For the admin's
 * export (right of access) and erasure (right to erasure).
 */
import type { Env } from '../env';
import { ApiError } from '../lib/http-error';

/** Link-following stops after this many rounds; a real person's ids close in two or three. */
const MAX_ROUNDS = 10;
/** A cluster larger than this is refused: it is a placeholder id gone wrong, not a person. */
const MAX_IDS = 10_000;

export interface PersonIds {
  anonymousIds: string[];
  userIds: string[];
}

export interface PersonData extends PersonIds {
  events: Array<Record<string, unknown>>;
  rejected: Array<Record<string, unknown>>;
  attempts: Array<Record<string, unknown>>;
  stateEvents: Array<Record<string, unknown>>;
}

/**
 * Every id linked to `id` through stored events (an event carrying an anonymous id and a user
 * id links them; an alias links previousId and userId), as the site stores them.
 */
export async function findPersonIds(
  db: D1Database,
  siteId: string,
  id: string,
): Promise<PersonIds> {
  const ids = new Set([id]);
  for (let round = 0; round < MAX_ROUNDS; round += 1) {
    const before = ids.size;
    // The id list travels as one JSON parameter (D1's 100-parameter limit, C32).
    const { results } = await db
      .prepare(
        `SELECT anonymous_id AS a, user_id AS u, previous_id AS p FROM events
         WHERE site_id = ?1 AND (anonymous_id IN (SELECT value FROM json_each(?2))
           OR user_id IN (SELECT value FROM json_each(?2))
           OR previous_id IN (SELECT value FROM json_each(?2)))`,
      )
      .bind(siteId, JSON.stringify([...ids]))
      .all<{ a: string | null; u: string | null; p: string | null }>();
    for (const row of results) {
      for (const value of [row.a, row.u, row.p]) if (value !== null) ids.add(value);
    }
    if (ids.size > MAX_IDS) {
      throw new ApiError(409, 'person_too_large', `the id links over ${MAX_IDS} ids`);
    }
    if (ids.size === before) break;
  }
  const list = JSON.stringify([...ids]);
  const { results } = await db
    .prepare(
      `SELECT DISTINCT anonymous_id AS a, user_id AS u FROM events
       WHERE site_id = ?1 AND (anonymous_id IN (SELECT value FROM json_each(?2))
         OR user_id IN (SELECT value FROM json_each(?2))
         OR previous_id IN (SELECT value FROM json_each(?2)))`,
    )
    .bind(siteId, list)
    .all<{ a: string | null; u: string | null }>();
  const anonymousIds = new Set<string>();
  const userIds = new Set<string>();
  for (const row of results) {
    if (row.a !== null) anonymousIds.add(row.a);
    if (row.u !== null) userIds.add(row.u);
  }
  // An id the site has no event for is still searched for in every store, as either kind.
  if (!anonymousIds.has(id) && !userIds.has(id)) {
    anonymousIds.add(id);
    userIds.add(id);
  }
  return { anonymousIds: [...anonymousIds], userIds: [...userIds] };
}

function statements(db: D1Database, siteId: string, ids: PersonIds, verb: 'SELECT *' | 'DELETE') {
  const all = JSON.stringify([...ids.anonymousIds, ...ids.userIds]);
  const people = JSON.stringify([
    ...ids.anonymousIds.map((a) => `a:${a}`),
    ...ids.userIds.map((u) => `u:${u}`),
  ]);
  return [
    db
      .prepare(
        `${verb} FROM events WHERE site_id = ?1
           AND (anonymous_id IN (SELECT value FROM json_each(?2))
           OR user_id IN (SELECT value FROM json_each(?2))
           OR previous_id IN (SELECT value FROM json_each(?2)))`,
      )
      .bind(siteId, all),
    // Rejected payloads may be truncated JSON, so they are matched as text; a row that
    // mentions one of the ids as a JSON string holds this person's data.
    db
      .prepare(
        `${verb} FROM rejected_events WHERE site_id = ?1 AND raw IS NOT NULL AND EXISTS
           (SELECT 1 FROM json_each(?2) j WHERE instr(raw, json_quote(j.value)) > 0)`,
      )
      .bind(siteId, all),
    db
      .prepare(
        `${verb} FROM attempts WHERE site_id = ?1
           AND person_id IN (SELECT value FROM json_each(?2))`,
      )
      .bind(siteId, people),
  ];
}

/** Everything stored about the person, from every store. */
export async function exportPerson(env: Env, siteId: string, ids: PersonIds): Promise<PersonData> {
  const [events, rejected, attempts] = await env.DB.batch<Record<string, unknown>>(
    statements(env.DB, siteId, ids, 'SELECT *'),
  );
  const state = env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));
  const stateEvents = await state.personEvents(ids, false);
  return {
    ...ids,
    events: events?.results ?? [],
    rejected: rejected?.results ?? [],
    attempts: attempts?.results ?? [],
    stateEvents,
  };
}

/** Deletes the person from every store; returns how many rows each store lost. */
export async function erasePerson(
  env: Env,
  siteId: string,
  ids: PersonIds,
): Promise<{ events: number; rejected: number; attempts: number; stateEvents: number }> {
  // The object first: once its rows are gone no later flush can rewrite the person's progress.
  const state = env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));
  const stateEvents = (await state.personEvents(ids, true)).length;
  const [events, rejected, attempts] = await env.DB.batch(
    statements(env.DB, siteId, ids, 'DELETE'),
  );
  return {
    events: events?.meta.changes ?? 0,
    rejected: rejected?.meta.changes ?? 0,
    attempts: attempts?.meta.changes ?? 0,
    stateEvents,
  };
}
