/**
 * Writes what one ingest request leaves in D1 in a single transactional batch: every rejected
 * and filtered event with its reason and, when the site object will not take the events before
 * the answer, the batch record the reconciler reads, holding the events. Valid events reach D1
 * through the site object, which copies them to the packs (src/ingest/event-packs.ts).
 */
import { chunkJson, entryEvent, packEntry } from './event-packs';
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
   * Whether to write the batch record with the events (`DEFER_APPLY`): the reconciler hands them
   * to the object. Otherwise the object takes them before the answer and no record is written
   * (docs/ARCHITECTURE.md, ingest).
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
 * Stores the request's refused events and, if `pending`, its batch record. D1 runs a `batch()`
 * as one transaction, so a failure stores nothing and the client's retry starts clean. The
 * record's events travel as one JSON parameter (D1 binds at most 100 values per statement).
 */
export async function storeBatch(db: D1Database, input: StoreBatchInput): Promise<void> {
  const statements: D1PreparedStatement[] = [];
  if (input.events.length > 0 && input.pending) statements.push(...pendingStatements(db, input));
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

/**
 * The records of a batch the site object has not taken yet (the reconciler's work list), with
 * its events as D1's packs hold them: the object copies them to the packs once it takes them.
 * One record per chunk of events (`chunkJson`: a D1 value holds at most 2 MB, and a body's
 * context is copied into each of its events), the first under the batch id, the next `<id>.1`…
 */
function pendingStatements(
  db: D1Database,
  input: Pick<StoreBatchInput, 'siteId' | 'batchId' | 'receivedAt' | 'events'>,
): D1PreparedStatement[] {
  const insert = db.prepare(
    `INSERT OR IGNORE INTO batches (id, site_id, received_at, message_ids, events)
     VALUES (?, ?, ?, ?, ?)`,
  );
  const entries = input.events.map((e) => JSON.stringify(packEntry(e)));
  return chunkJson(entries).map(({ json, from, to }, i) =>
    insert.bind(
      i === 0 ? input.batchId : `${input.batchId}.${i}`,
      input.siteId,
      input.receivedAt,
      JSON.stringify(input.events.slice(from, to).map((e) => e.messageId)),
      json,
    ),
  );
}

/**
 * Records valid events as pending after the site object failed to take them: the reconciler
 * hands them over later.
 */
export async function recordPending(
  db: D1Database,
  input: Pick<StoreBatchInput, 'siteId' | 'batchId' | 'receivedAt' | 'events'>,
): Promise<void> {
  await db.batch(pendingStatements(db, input));
}

/** The events of a pending batch record (its `events` column). */
export function recordedEvents(events: string): Array<StoredEvent & { messageId: string }> {
  return (JSON.parse(events) as unknown[][]).map(entryEvent);
}
