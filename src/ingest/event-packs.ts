/**
 * D1's copy of the events, packed (`event_packs`, migration 0016). D1 bills every row written,
 * so a row per event (and an index entry per event) was most of the bill. The site object keeps
 * each event once (by device and message id) with its whole entry, and its write cycle copies
 * the events it took since the last cycle to D1: one row per hour of event time (per chunk of
 * `PACK_CHARS`), holding the entries as a JSON array. A cycle lost with its instance is copied
 * again by the recovery, so a pack may repeat an entry another pack holds: every reader takes
 * the first copy of each event. Both copies come from the object's one stored entry, so they
 * carry the same event time and sit in the same hour.
 *
 * Each entry is `[message_id, type, event, anonymous_id, user_id, previous_id, ts, client_ts,
 * properties, traits, context]`, the last three as JSON objects (or null). The `events` view
 * (same migration) reads every pack of a site as the rows the old table held.
 */
import { HOUR_MS } from '../lib/units';
import type { StoredEvent } from './normalize';

/** The old `events` columns, read from a pack entry `j` of a pack `h`. */
const ENTRY_COLUMNS = `h.site_id AS site_id, j.value ->> 0 AS message_id, j.value ->> 1 AS type,
  j.value ->> 2 AS event, j.value ->> 3 AS anonymous_id, j.value ->> 4 AS user_id,
  j.value ->> 5 AS previous_id, j.value ->> 6 AS ts, j.value ->> 7 AS client_ts,
  j.value ->> 8 AS properties, j.value ->> 9 AS traits, j.value ->> 10 AS context,
  h.batch_id AS batch_id`;

/** The device part of an entry's key (`ENTRY_KEY`): as `deviceKey` makes it. */
const ENTRY_DEVICE = `CASE WHEN j.value ->> 1 = 'alias' THEN ''
  ELSE COALESCE(j.value ->> 3, '') END`;

/**
 * An event's key, as the site object keeps events (device, message id), in one value: the
 * device, U+001F, the message id (a device id holding U+001F is dropped as junk at ingest).
 */
export const eventKey = (device: string, messageId: string) => `${device}\u001f${messageId}`;

/** `eventKey` in SQL, of SQL expressions. */
export const eventKeySql = (device: string, messageId: string) =>
  `${device} || char(31) || ${messageId}`;

/** The key (`eventKeySql`) of a pack entry `j`. */
const ENTRY_EVENT_KEY = eventKeySql(ENTRY_DEVICE, '(j.value ->> 0)');

/**
 * What keeps one copy of an event: the site object's key (src/identity/state-batch.ts,
 * `deviceKey`), the device ('' for an alias or an event without one) and the message id.
 */
const ENTRY_KEY = `h.site_id, j.value ->> 0, ${ENTRY_DEVICE}`;

/** A pack entry of an event. */
export function packEntry(e: StoredEvent & { messageId: string }): unknown[] {
  return [
    e.messageId,
    e.type,
    e.event,
    e.anonymousId,
    e.userId,
    e.previousId,
    e.ts,
    e.clientTs,
    e.properties,
    e.traits,
    e.context,
  ];
}

/**
 * Most characters (UTF-16 units) of entries one pack statement carries. D1 holds a value of up to
 * 2 MB, counted in UTF-8 bytes, and a unit takes at most 3 of them: 600,000 units stay under
 * 1.8 MB whatever the script (a lone entry may be longer: it goes alone).
 */
const PACK_CHARS = 600_000;

/** The event a pack entry holds (`packEntry` read back). */
export function entryEvent(entry: unknown[]): StoredEvent & { messageId: string } {
  const object = (value: unknown) => (value ?? null) as Record<string, unknown> | null;
  return {
    messageId: entry[0] as string,
    type: entry[1] as StoredEvent['type'],
    event: (entry[2] ?? null) as string | null,
    anonymousId: (entry[3] ?? null) as string | null,
    userId: (entry[4] ?? null) as string | null,
    previousId: (entry[5] ?? null) as string | null,
    ts: entry[6] as number,
    clientTs: (entry[7] ?? null) as string | null,
    properties: object(entry[8]),
    traits: object(entry[9]),
    context: object(entry[10]) ?? {},
  };
}

/**
 * The statement that stores events (`entries`: a JSON array of `packEntry` arrays, as text), one
 * row per hour of event time, under a new batch id.
 */
export function packStatement(
  db: D1Database,
  input: { siteId: string; receivedAt: number; entries: string },
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO event_packs (site_id, hour, batch_id, received_at, events)
       SELECT ?1, ((e.value ->> 6) / ${HOUR_MS}) * ${HOUR_MS} AS hour, ?2, ?3,
         json_group_array(json(e.value))
       FROM json_each(?4) e GROUP BY hour`,
    )
    .bind(input.siteId, crypto.randomUUID(), input.receivedAt, input.entries);
}

/**
 * JSON texts grouped into JSON arrays (as text) of at most `PACK_CHARS` characters each (a text
 * longer than that alone in its array), in order, with the indexes each array holds.
 */
export function chunkJson(
  texts: readonly string[],
): Array<{ json: string; from: number; to: number }> {
  const chunks: Array<{ json: string; from: number; to: number }> = [];
  let from = 0;
  let chars = 0;
  for (let i = 0; i <= texts.length; i += 1) {
    const text = texts[i];
    if (i === texts.length || (chars > 0 && chars + (text as string).length > PACK_CHARS)) {
      if (i > from) chunks.push({ json: `[${texts.slice(from, i).join(',')}]`, from, to: i });
      from = i;
      chars = 0;
    }
    if (text !== undefined) chars += text.length + 1;
  }
  return chunks;
}

/**
 * The hour a pack of events at `ts` is stored under: SQLite's integer division of the event time
 * (`packStatement`), toward zero. The copy and a person's reads both use it, so they agree
 * before 1970 too.
 */
const packHour = (ts: number) => Math.trunc(ts / HOUR_MS) * HOUR_MS;

/**
 * Hours of event time a copy may span and still go to D1 as its entries' texts, one statement
 * per hour; a copy spanning more (a historical import) is grouped by `packStatement` in D1.
 */
export const TEXT_PACK_HOURS = 4;

/**
 * The statements that copy events taken by the site object to the packs (`raw`: the entry as
 * JSON text, `at`: when taken, `ts`: its event time), each pack carrying the last `at` among its
 * entries as its `received_at`. A copy of a few hours (live traffic) is grouped by hour here and
 * each pack stored as its entries' texts joined, as the object stored them (SQLite wrote them):
 * grouping in D1 converted every event between text and JSONB three times (`json_each`, its
 * event time, `json(…)`), and SQLite's JSON work was a fifth of the local thread
 * (docs/BENCHMARKS.md, session 11). A copy of many hours goes to `packStatement` by chunk, one
 * statement for all its hours, not one per hour.
 */
export function mirrorStatements(
  db: D1Database,
  siteId: string,
  events: ReadonlyArray<{ raw: string; at: number; ts: number }>,
): D1PreparedStatement[] {
  const lastAt = (list: ReadonlyArray<{ at: number }>) => Math.max(...list.map((e) => e.at));
  const byHour = new Map<number, Array<{ raw: string; at: number }>>();
  for (const e of events) {
    const hour = packHour(e.ts);
    const list = byHour.get(hour);
    if (list) list.push(e);
    else byHour.set(hour, [e]);
  }
  if (byHour.size > TEXT_PACK_HOURS) {
    return chunkJson(events.map((e) => e.raw)).map(({ json, from, to }) =>
      packStatement(db, { siteId, receivedAt: lastAt(events.slice(from, to)), entries: json }),
    );
  }
  return [...byHour].flatMap(([hour, list]) =>
    chunkJson(list.map((e) => e.raw)).map(({ json, from, to }) =>
      db
        .prepare(
          `INSERT INTO event_packs (site_id, hour, batch_id, received_at, events)
           VALUES (?1, ?2, ?3, ?4, ?5)`,
        )
        .bind(siteId, hour, crypto.randomUUID(), lastAt(list.slice(from, to)), json),
    ),
  );
}

/**
 * A subquery of the events (first copies, with the old table's columns and the `received_at` of
 * the request that brought them) in the packs `where` selects: a condition on the pack `h` (its
 * `site_id`, `hour`, `batch_id`) and the entry `j`. Use it as a table.
 */
export function packedEvents(where: string): string {
  return `(SELECT MIN(h.received_at) AS received_at, ${ENTRY_COLUMNS}
    FROM event_packs h CROSS JOIN json_each(h.events) j
    WHERE ${where}
    GROUP BY ${ENTRY_KEY})`;
}

/**
 * The events with event time in [from, to) of the sites `site` selects. `site` is a condition on
 * `h.site_id` (`h.site_id = ?1`, `h.site_id IN (…)`); `from` and `to` are SQL expressions
 * (parameters). Use it as a table: `FROM ${eventsByTime(…)} AS events`.
 */
export function eventsByTime(site: string, from: string, to: string): string {
  return packedEvents(`${site} AND h.hour > ${from} - ${HOUR_MS} AND h.hour < ${to}
      AND j.value ->> 6 >= ${from} AND j.value ->> 6 < ${to}`);
}

/** A pack's events less the entries `keep` (a condition on the entry `j`) turns away. */
const packKeeping = (keep: string) =>
  `(SELECT json_group_array(json(j.value)) FROM json_each(events) j WHERE ${keep})`;

/**
 * Statements that delete a site's (?1) events from before ?2: the packs of the hours wholly
 * before it, and the older entries of the hour it splits. The first statement's single row
 * `n` is the events deleted (every copy).
 */
export function purgeEventsBeforeStatements(
  db: D1Database,
  siteId: string,
  cutoff: number,
): D1PreparedStatement[] {
  const split = `site_id = ?1 AND hour > ?2 - ${HOUR_MS} AND hour < ?2`;
  return [
    `SELECT COUNT(*) AS n FROM event_packs h CROSS JOIN json_each(h.events) j
     WHERE h.site_id = ?1 AND h.hour < ?2 AND j.value ->> 6 < ?2`,
    `DELETE FROM event_packs WHERE site_id = ?1 AND hour <= ?2 - ${HOUR_MS}`,
    `UPDATE event_packs SET events = ${packKeeping('j.value ->> 6 >= ?2')} WHERE ${split}`,
    `DELETE FROM event_packs WHERE ${split} AND json_array_length(events) = 0`,
  ].map((sql) => db.prepare(sql).bind(siteId, cutoff));
}

/**
 * The condition on a pack `h` and entry `j` that finds a person's events (every copy): site ?1,
 * keys (`device` + U+001F + `message id`) in the JSON array ?2, among the hours in the JSON
 * array ?3. Keyed like the site object, so another device's event with the same message id stays.
 */
const THEIR_ENTRIES = `${ENTRY_EVENT_KEY} IN (SELECT value FROM json_each(?2))`;
const PERSON_ENTRIES = `h.site_id = ?1 AND h.hour IN (SELECT value FROM json_each(?3))
  AND ${THEIR_ENTRIES}`;

/** A person's events as the site object keys them: device, message id and event time. */
export interface PersonEvents {
  events: ReadonlyArray<{ device: string; messageId: string; ts: number }>;
}

/** The bound values of `PERSON_ENTRIES`. */
function personValues(siteId: string, person: PersonEvents): [string, string, string] {
  const keys = person.events.map((e) => eventKey(e.device, e.messageId));
  const hours = new Set(person.events.map((e) => packHour(e.ts)));
  return [siteId, JSON.stringify(keys), JSON.stringify([...hours])];
}

/** The statement that reads a person's events (first copies), in event-time order. */
export function personEventsStatement(
  db: D1Database,
  siteId: string,
  person: PersonEvents,
): D1PreparedStatement {
  return db
    .prepare(`SELECT * FROM ${packedEvents(PERSON_ENTRIES)} ORDER BY ts, message_id`)
    .bind(...personValues(siteId, person));
}

/**
 * Statements that erase a person's events (every copy) from the packs of their hours. The first
 * statement's single row `n` is the events erased (first copies).
 */
export function erasePersonEventsStatements(
  db: D1Database,
  siteId: string,
  person: PersonEvents,
): D1PreparedStatement[] {
  const packs = `site_id = ?1 AND hour IN (SELECT value FROM json_each(?3))`;
  return [
    `SELECT COUNT(*) AS n FROM ${packedEvents(PERSON_ENTRIES)}`,
    `UPDATE event_packs SET events = ${packKeeping(`NOT (${THEIR_ENTRIES})`)}
     WHERE ${packs} AND EXISTS (SELECT 1 FROM json_each(events) j WHERE ${THEIR_ENTRIES})`,
    `DELETE FROM event_packs WHERE ${packs} AND json_array_length(events) = 0`,
  ].map((sql) => db.prepare(sql).bind(...personValues(siteId, person)));
}
