/**
 * The ingest shell: from a parsed body and a resolved site to stored events and the response
 * contract of docs/API.md. Routes authenticate and read the body; this does the rest.
 */
import {
  deviceReassignedWarnings,
  refusedAliasWarnings,
  type GuardLookup,
} from '../identity/alias-guard';
import { deviceKey } from '../identity/state-batch';
import { sha256Hex } from '../lib/crypto';
import { logger } from '../lib/logger';
import { ApiError } from '../lib/http-error';
import { eventKey } from './event-packs';
import { storeBatch, type RejectedRecord } from './event-store';
import { guardPayload } from './guards';
import { normalizeEvent, type NormalizeOptions, type StoredEvent } from './normalize';
import type { EventType, Filtered, IngestResponse, Warning } from './schema';
import { classifyTraffic, type TrafficFacts } from './traffic-filter';

export interface IngestInput {
  db: D1Database;
  siteId: string;
  body: unknown;
  /** Set by single-event routes (`/v1/track` …); null for `/v1/batch` and imports. */
  impliedType: EventType | null;
  receivedAt: number;
  /** Oldest event time accepted, or null on the historical import path. */
  oldestAllowed: number | null;
  /** Oldest event time the site keeps, on every path (`retainedFrom`); null: everything. */
  retainedFrom: number | null;
  requestUserAgent: string | null;
  requestCountry: string | null;
  /**
   * Request facts for bot, prerender and opt-out filtering (the event's own UA is added); null
   * when an admin re-submits events they have judged, which skips the filters.
   */
  traffic: Omit<TrafficFacts, 'eventUserAgent'> | null;
  /** Write the batch record with the events, for the reconciler (`DEFER_APPLY`). */
  pending?: boolean;
  /** The site object's identity facts for the guardrails' warnings (`alias-guard.ts`). */
  guard: GuardLookup;
}

export interface IngestOutcome {
  status: 200 | 400;
  body: IngestResponse & { code?: string; message?: string };
  /** The valid events, once each within the request; the site object keeps the new ones. */
  stored: Array<StoredEvent & { messageId: string }>;
  batchId: string;
}

/**
 * Most events one request may carry. It bounds the work (and the rejected rows stored) that one
 * small request can cause: 1,000 real events are far more than any SDK sends at once.
 */
export const MAX_BATCH_EVENTS = 1000;
/**
 * Most characters a batch-level `context` may add to a request once copied into each event
 * (its length times the events): it bounds the memory and the storage one small body can cause
 * (a 100 KB context over 1,000 events would be 100 MB).
 */
export const MAX_BATCH_CONTEXT_COPIES = 2_000_000;

const asRecord = (value: unknown): Record<string, unknown> | null =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;

/**
 * The payload filed with a refused event: a single-event route's body gets the type its route
 * implied, so re-submitting it (which goes through the batch rules) reads the same event.
 */
function filedPayload(message: unknown, impliedType: EventType | null): unknown {
  const record = asRecord(message);
  if (impliedType === null || !record || record.type !== undefined) return message;
  return { type: impliedType, ...record };
}

/** Splits a body into its messages and the envelope fields they inherit. */
function unpack(body: unknown, impliedType: EventType | null) {
  const envelope = asRecord(body);
  if (!envelope) throw new ApiError(400, 'invalid_body', 'request body must be a JSON object');
  if (impliedType !== null) {
    if (Array.isArray(envelope.batch)) {
      throw new ApiError(
        400,
        'batch_on_single_route',
        'this route takes one event; send batches to /v1/batch',
      );
    }
    return { messages: [body], sentAt: undefined, context: null, contextWarnings: [] };
  }
  if (!Array.isArray(envelope.batch)) {
    throw new ApiError(400, 'invalid_body', 'batch body needs a "batch" array of events');
  }
  if (envelope.batch.length === 0) {
    throw new ApiError(400, 'empty_batch', 'the "batch" array is empty');
  }
  if (envelope.batch.length > MAX_BATCH_EVENTS) {
    throw new ApiError(
      413,
      'too_many_events',
      `a batch may hold at most ${MAX_BATCH_EVENTS} events; split it`,
    );
  }
  const context = asRecord(envelope.context);
  const guard = context ? guardPayload(context) : null;
  const guarded = guard?.value ?? null;
  const copied = guarded ? JSON.stringify(guarded).length * envelope.batch.length : 0;
  if (copied > MAX_BATCH_CONTEXT_COPIES) {
    throw new ApiError(
      413,
      'batch_context_too_large',
      "the batch's context is copied into each of its events: at most " +
        `${MAX_BATCH_CONTEXT_COPIES} characters in all; send a smaller context or fewer events`,
    );
  }
  return {
    messages: envelope.batch,
    sentAt: envelope.sentAt,
    context: guarded,
    contextWarnings: guard?.warnings ?? [],
  };
}

/**
 * An id for an event that came without one, derived from its content minus `sentAt` (which a
 * retry changes), so an identical retry still deduplicates. Two genuine events with the same
 * content and no `timestamp` therefore count once: a client that repeats identical events must
 * send a `messageId` or a `timestamp` (docs/API.md).
 */
async function derivedMessageId(raw: unknown): Promise<string> {
  const { sentAt: _ignored, ...rest } = raw as Record<string, unknown>;
  return `gs-${(await sha256Hex(JSON.stringify(rest))).slice(0, 32)}`;
}

/** The messageId a rejected event carried, if it is a usable string, to find it again. */
function messageIdOf(message: unknown): string | null {
  const id = asRecord(message)?.messageId;
  return typeof id === 'string' && id.length > 0 && id.length <= 200 ? id : null;
}

/**
 * The user agent the client reported for the event (its own context, else the batch's), not
 * the one normalize filled in from the request: that one may be a server SDK's.
 */
function clientUserAgent(message: unknown, batchContext: Record<string, unknown> | null) {
  const own = asRecord(asRecord(message)?.context)?.userAgent;
  const agent = own ?? batchContext?.userAgent;
  return typeof agent === 'string' && agent !== '' ? agent : null;
}

/** Validates, stores and answers one ingest request. */
export async function ingestRequest(input: IngestInput): Promise<IngestOutcome> {
  const { messages, sentAt, context, contextWarnings } = unpack(input.body, input.impliedType);
  const options: NormalizeOptions = {
    receivedAt: input.receivedAt,
    batchSentAt: sentAt,
    batchContext: context,
    requestUserAgent: input.requestUserAgent,
    requestCountry: input.requestCountry,
    oldestAllowed: input.oldestAllowed,
    retainedFrom: input.retainedFrom,
    impliedType: input.impliedType,
  };

  const valid: Array<StoredEvent & { messageId: string }> = [];
  const rejected: RejectedRecord[] = [];
  const filtered: Array<Filtered & { raw: unknown; messageId: string }> = [];
  // What the guard changed in the batch's own `context` is said once, at index -1.
  const warnings: Warning[] = contextWarnings.map((w) => ({ index: -1, ...w }));
  const seen = new Set<string>();
  const checked: Array<{ index: number; event: StoredEvent & { messageId: string } }> = [];
  let duplicates = 0;
  for (const [index, message] of messages.entries()) {
    const result = normalizeEvent(message, options);
    if (!result.ok) {
      const raw = filedPayload(message, input.impliedType);
      rejected.push({ index, ...result.rejection, raw, messageId: messageIdOf(message) });
      continue;
    }
    for (const warning of result.warnings) warnings.push({ index, ...warning });
    let messageId = result.event.messageId;
    if (messageId === null) {
      messageId = await derivedMessageId(message);
      warnings.push({
        index,
        code: 'message_id_assigned',
        message: 'event had no messageId; goalstep assigned one (see docs/API.md on retries)',
      });
    }
    // Kept once per device and message id, as the site object keys events.
    const key = eventKey(deviceKey(result.event), messageId);
    if (seen.has(key)) {
      duplicates += 1;
      continue;
    }
    seen.add(key);
    const verdict =
      input.traffic &&
      classifyTraffic({ ...input.traffic, eventUserAgent: clientUserAgent(message, context) });
    if (verdict) {
      // Kept where an operator can audit it, never sent to the funnels (C26). An opted-out
      // visitor's payload is not kept at all: only the count and the reason.
      const raw =
        verdict.code === 'privacy_opt_out' ? null : filedPayload(message, input.impliedType);
      filtered.push({ index, code: verdict.code, rule: verdict.rule, raw, messageId });
      continue;
    }
    valid.push({ ...result.event, messageId });
    checked.push({ index, event: { ...result.event, messageId } });
  }
  warnings.push(
    ...(await refusedAliasWarnings(input.guard, input.siteId, checked)),
    ...(await deviceReassignedWarnings(input.guard, input.siteId, checked)),
  );

  const batchId = crypto.randomUUID();
  try {
    await storeBatch(input.db, {
      siteId: input.siteId,
      batchId,
      pending: input.pending,
      receivedAt: input.receivedAt,
      events: valid,
      rejected,
      filtered: filtered.map((f) => ({
        code: f.code,
        rule: f.rule,
        raw: f.raw,
        messageId: f.messageId,
      })),
    });
  } catch (error) {
    logger.error('ingest.store_failed', { site: input.siteId, events: valid.length, cause: error });
    throw new ApiError(503, 'storage_unavailable', 'events could not be stored; retry later', {
      cause: error,
    });
  }

  // Provisional: the site object says which events are new (`ingestAndDeliver`).
  const stored = valid;
  const body: IngestOutcome['body'] = {
    accepted: stored.length,
    duplicates,
    rejected: rejected.map(({ raw: _raw, messageId: _id, ...rest }) => rest),
    filtered: filtered.map(({ raw: _raw, messageId: _id, ...rest }) => rest),
    warnings,
  };
  if (valid.length === 0 && filtered.length === 0) {
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
