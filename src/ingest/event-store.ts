/**
 * Writes one ingest request to D1 in a single transactional batch: every valid event
 * (deduplicated on the site's message id) with its time index rows (src/ingest/event-hours.ts),
 * every rejected event with its reason and, when the site object will not take the events before
 * the answer, the batch record the reconciler reads.
 */
import { eventHoursStatement } from './event-hours';
import { truncateText } from './guards';
import type { StoredEvent } from './normalize';
import { fileRefusedStatement } from './refused-store';
import type { Rejection } from './schema';

/** Rejected payloads are kept for inspection and re-submission, capped at this many bytes. */
const MAX_REJECTED_RAW = 8 * 1024;

export interface RejectedRecord extends Rejection {
  raw: unknown;
  messageId: string | null;
}

/** A valid event kept out of funnels (bot, prerender, opt-out), stored for audit. */
export interface FilteredRecord {
  code: string;
  rule: string;
  /** Null when the payload must not be kept (a visitor who opted out). */
  raw: unknown;
  messageId: string;
}

export interface StoreBatchInput {
  siteId: string;
  batchId: string;
  /**
   * Whether to write the batch record with the events (`DEFER_APPLY`, and the historical import
   * paths): the object applies them from it, or the reconciler does. Otherwise the object takes
   * them before the answer and no record is written (docs/ARCHITECTURE.md, ingest).
   */
  pending?: boolean;
  receivedAt: number;
  events: Array<StoredEvent & { messageId: string }>;
  rejected: RejectedRecord[];
  filtered: FilteredRecord[];
}

const json = (value: unknown) => (value == null ? null : JSON.stringify(value));

/** The payload as JSON text, cut on a code-point boundary when it is over the cap. */
export function capRaw(raw: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(raw) ?? 'undefined';
  } catch {
    // Nesting deep enough to overflow the serialiser: the reason code says why; keep a marker.
    text = '"[payload nested too deeply to serialise]"';
  }
  return truncateText(text, MAX_REJECTED_RAW);
}

/**
 * Stores the batch and returns the events stored for the first time. D1 runs a `batch()` as
 * one transaction, so a failure stores nothing and the client's retry starts clean. The events
 * travel as one JSON parameter (D1 binds at most 100 values per statement).
 */
export async function storeBatch(
  db: D1Database,
  input: StoreBatchInput,
): Promise<Array<StoredEvent & { messageId: string }>> {
  const statements: D1PreparedStatement[] = [];
  if (input.events.length > 0) {
    if (input.pending) {
      const ids = input.events.map((e) => e.messageId);
      statements.push(pendingStatement(db, input.siteId, input.batchId, input.receivedAt, ids));
    }
    // Every event in one statement, its rows as one JSON parameter: one statement per event
    // cost D1's client more than the inserts themselves (docs/BENCHMARKS.md, profile).
    statements.push(
      db
        .prepare(
          `INSERT INTO events (site_id, message_id, type, event, anonymous_id, user_id,
             previous_id, ts, client_ts, received_at, properties, traits, context, batch_id)
           SELECT ?1, e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4,
             e.value ->> 5, e.value ->> 6, e.value ->> 7, ?2, e.value ->> 8, e.value ->> 9,
             e.value ->> 10, ?3
           FROM json_each(?4) e WHERE 1
           ON CONFLICT DO NOTHING RETURNING message_id`,
        )
        .bind(
          input.siteId,
          input.receivedAt,
          input.batchId,
          JSON.stringify(
            input.events.map((e) => [
              e.messageId,
              e.type,
              e.event,
              e.anonymousId,
              e.userId,
              e.previousId,
              e.ts,
              e.clientTs,
              json(e.properties),
              json(e.traits),
              json(e.context),
            ]),
          ),
        ),
      // After the insert, in the same transaction: the time index lists what it stored.
      eventHoursStatement(
        db,
        input.siteId,
        input.batchId,
        input.events.map((e) => e.messageId),
      ),
    );
  }
  // Refused and filtered events, each filed once across retries (refused-store.ts).
  const insertRefused = fileRefusedStatement(db);
  for (const r of input.rejected) {
    statements.push(
      insertRefused.bind(
        input.siteId,
        input.receivedAt,
        r.code,
        r.path,
        r.message,
        capRaw(r.raw),
        'rejected',
        null,
        r.messageId,
      ),
    );
  }
  for (const f of input.filtered) {
    statements.push(
      insertRefused.bind(
        input.siteId,
        input.receivedAt,
        f.code,
        '',
        `filtered: ${f.code}`,
        f.raw === null ? null : capRaw(f.raw),
        'filtered',
        f.rule,
        f.messageId,
      ),
    );
  }
  if (statements.length === 0) return [];

  const results = await db.batch<{ message_id: string }>(statements);
  const stored = new Set<string>();
  for (const result of results) {
    for (const row of result.results ?? []) if (row.message_id) stored.add(row.message_id);
  }
  return input.events.filter((e) => stored.has(e.messageId));
}

/** The record of a batch the site object has not taken yet (the reconciler's work list). */
function pendingStatement(
  db: D1Database,
  siteId: string,
  batchId: string,
  receivedAt: number,
  messageIds: readonly string[],
): D1PreparedStatement {
  return db
    .prepare(
      'INSERT OR IGNORE INTO batches (id, site_id, received_at, message_ids) VALUES (?, ?, ?, ?)',
    )
    .bind(batchId, siteId, receivedAt, JSON.stringify(messageIds));
}

/**
 * Records stored events as pending after the site object failed to take them: the reconciler
 * hands them over later.
 */
export async function recordPending(
  db: D1Database,
  input: { siteId: string; batchId: string; receivedAt: number; messageIds: readonly string[] },
): Promise<void> {
  await db.batch([
    pendingStatement(db, input.siteId, input.batchId, input.receivedAt, input.messageIds),
  ]);
}

interface EventRow {
  message_id: string;
  type: StoredEvent['type'];
  event: string | null;
  anonymous_id: string | null;
  user_id: string | null;
  previous_id: string | null;
  ts: number;
  client_ts: string | null;
  properties: string | null;
  traits: string | null;
  context: string | null;
}

const parse = (text: string | null) =>
  text ? (JSON.parse(text) as Record<string, unknown>) : null;

/**
 * The site's stored copies of some message ids, as first stored: the reconciler reads a pending
 * batch's events, and the sweep the events their object lacks.
 */
export async function loadStored(
  db: D1Database,
  siteId: string,
  messageIds: readonly string[],
): Promise<Array<StoredEvent & { messageId: string }>> {
  // The id list travels as one JSON parameter: no IN (?, ?, …) against D1's 100-bind limit.
  const { results } = await db
    .prepare(
      `SELECT * FROM events WHERE site_id = ? AND message_id IN (SELECT value FROM json_each(?))`,
    )
    .bind(siteId, JSON.stringify(messageIds))
    .all<EventRow>();
  return results.map((r) => ({
    messageId: r.message_id,
    type: r.type,
    event: r.event,
    anonymousId: r.anonymous_id,
    userId: r.user_id,
    previousId: r.previous_id,
    ts: r.ts,
    clientTs: r.client_ts,
    properties: parse(r.properties),
    traits: parse(r.traits),
    context: parse(r.context) ?? {},
  }));
}
