/**
 * The ingest shell: from a parsed body and a resolved site to stored events and the response
 * contract of docs/API.md. Routes authenticate and read the body; this does the rest.
 */
import { deviceReassignedWarnings, refusedAliasWarnings } from '../identity/alias-guard';
import { sha256Hex } from '../lib/crypto';
import { logger } from '../lib/logger';
import { ApiError } from '../lib/http-error';
import { storeBatch, type RejectedRecord } from './event-store';
import { normalizeEvent, type NormalizeOptions, type StoredEvent } from './normalize';
import type { EventType, IngestResponse, Warning } from './schema';

export interface IngestInput {
  db: D1Database;
  siteId: string;
  body: unknown;
  /** Set by single-event routes (`/v1/track` …); null for `/v1/batch` and imports. */
  impliedType: EventType | null;
  receivedAt: number;
  /** Oldest event time accepted, or null on the historical import path. */
  oldestAllowed: number | null;
  requestUserAgent: string | null;
  requestCountry: string | null;
}

export interface IngestOutcome {
  status: 200 | 400;
  body: IngestResponse & { code?: string; message?: string };
  stored: Array<StoredEvent & { messageId: string }>;
  batchId: string;
}

const asRecord = (value: unknown): Record<string, unknown> | null =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;

/** Splits a body into its messages and the envelope fields they inherit. */
function unpack(body: unknown, impliedType: EventType | null) {
  const envelope = asRecord(body);
  if (!envelope) throw new ApiError(400, 'invalid_body', 'request body must be a JSON object');
  if (impliedType !== null) return { messages: [body], sentAt: undefined, context: null };
  if (!Array.isArray(envelope.batch)) {
    throw new ApiError(400, 'invalid_body', 'batch body needs a "batch" array of events');
  }
  if (envelope.batch.length === 0) {
    throw new ApiError(400, 'empty_batch', 'the "batch" array is empty');
  }
  return { messages: envelope.batch, sentAt: envelope.sentAt, context: asRecord(envelope.context) };
}

/**
 * An id for an event that came without one, derived from its content (minus `sentAt`, which a
 * retry changes), so an identical retry still deduplicates.
 */
async function contentMessageId(raw: unknown): Promise<string> {
  const { sentAt: _ignored, ...rest } = raw as Record<string, unknown>;
  return `gs-${(await sha256Hex(JSON.stringify(rest))).slice(0, 32)}`;
}

/** Validates, stores and answers one ingest request. */
export async function ingestRequest(input: IngestInput): Promise<IngestOutcome> {
  const { messages, sentAt, context } = unpack(input.body, input.impliedType);
  const options: NormalizeOptions = {
    receivedAt: input.receivedAt,
    batchSentAt: sentAt,
    batchContext: context,
    requestUserAgent: input.requestUserAgent,
    requestCountry: input.requestCountry,
    oldestAllowed: input.oldestAllowed,
    impliedType: input.impliedType,
  };

  const valid: Array<StoredEvent & { messageId: string }> = [];
  const rejected: RejectedRecord[] = [];
  const warnings: Warning[] = [];
  const seen = new Set<string>();
  const checked: Array<{ index: number; event: StoredEvent }> = [];
  let duplicates = 0;
  for (const [index, message] of messages.entries()) {
    const result = normalizeEvent(message, options);
    if (!result.ok) {
      rejected.push({ index, ...result.rejection, raw: message });
      continue;
    }
    for (const warning of result.warnings) warnings.push({ index, ...warning });
    let messageId = result.event.messageId;
    if (messageId === null) {
      messageId = await contentMessageId(message);
      warnings.push({
        index,
        code: 'message_id_assigned',
        message: 'event had no messageId; one was derived from its content',
      });
    }
    if (seen.has(messageId)) {
      duplicates += 1;
      continue;
    }
    seen.add(messageId);
    valid.push({ ...result.event, messageId });
    checked.push({ index, event: result.event });
  }
  warnings.push(
    ...(await refusedAliasWarnings(input.db, input.siteId, checked)),
    ...(await deviceReassignedWarnings(input.db, input.siteId, checked)),
  );

  const batchId = crypto.randomUUID();
  let stored: Array<StoredEvent & { messageId: string }>;
  try {
    stored = await storeBatch(input.db, {
      siteId: input.siteId,
      batchId,
      receivedAt: input.receivedAt,
      events: valid,
      rejected,
    });
  } catch (error) {
    logger.error('ingest.store_failed', { site: input.siteId, events: valid.length, cause: error });
    throw new ApiError(503, 'storage_unavailable', 'events could not be stored; retry later', {
      cause: error,
    });
  }

  duplicates += valid.length - stored.length;
  const body: IngestOutcome['body'] = {
    accepted: stored.length,
    duplicates,
    rejected: rejected.map(({ raw: _raw, ...rest }) => rest),
    warnings,
  };
  if (valid.length === 0) {
    return {
      status: 400,
      body: { code: 'no_valid_events', message: 'no event in the body was valid', ...body },
      stored,
      batchId,
    };
  }
  if (rejected.length > 0) {
    logger.info('ingest.rejected', { site: input.siteId, count: rejected.length });
  }
  return { status: 200, body, stored, batchId };
}
