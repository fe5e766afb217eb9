/**
 * Writes one ingest request to D1 in a single transactional batch: its valid events, packed
 * per hour of event time (src/ingest/event-packs.ts),
 * every rejected event with its reason and, when the site object will not take the events before
 * the answer, the batch record the reconciler reads.
 */
import { eventsByTime, packedEvents, packEntry, packStatement } from './event-packs';
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
 * Stores the batch. D1 runs a `batch()` as one transaction, so a failure stores nothing and the
 * client's retry starts clean. The events travel as one JSON parameter (D1 binds at most 100
 * values per statement). Which of them are new is the site object's answer, not D1's: D1 keeps
 * what each request brought (src/ingest/event-packs.ts).
 */
export async function storeBatch(db: D1Database, input: StoreBatchInput): Promise<void> {
  const statements: D1PreparedStatement[] = [];
  if (input.events.length > 0) {
    if (input.pending) {
      const ids = input.events.map((e) => e.messageId);
      statements.push(pendingStatement(db, input.siteId, input.batchId, input.receivedAt, ids));
    }
    // Every event in one statement, its rows as one JSON parameter: one statement per event
    // cost D1's client more than the inserts themselves (docs/BENCHMARKS.md, profile).
    statements.push(
      packStatement(db, {
        siteId: input.siteId,
        batchId: input.batchId,
        receivedAt: input.receivedAt,
        entries: input.events.map(packEntry),
      }),
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
  if (statements.length > 0) await db.batch(statements);
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
 * Stored events by message id, as first stored, from the packs of one request (`batchId`: the
 * reconciler reads a pending batch's events) or of an event-time range (`from`, `to`: the sweep
 * reads the events their object lacks).
 */
export async function loadStored(
  db: D1Database,
  siteId: string,
  where: { batchId: string } | { from: number; to: number },
  messageIds: readonly string[],
): Promise<Array<StoredEvent & { messageId: string }>> {
  // The id list travels as one JSON parameter: no IN (?, ?, …) against D1's 100-bind limit.
  const ids = 'message_id IN (SELECT value FROM json_each(?2))';
  const statement =
    'batchId' in where
      ? db
          .prepare(
            `SELECT * FROM ${packedEvents('h.site_id = ?1 AND h.batch_id = ?3')} WHERE ${ids}`,
          )
          .bind(siteId, JSON.stringify(messageIds), where.batchId)
      : db
          .prepare(`SELECT * FROM ${eventsByTime('h.site_id = ?1', '?3', '?4')} WHERE ${ids}`)
          .bind(siteId, JSON.stringify(messageIds), where.from, where.to);
  const { results } = await statement.all<EventRow>();
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
