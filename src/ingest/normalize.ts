/**
 * Turns one received message into the stored event, or into a rejection with a stable code.
 * Pure: the receipt time, the batch's `sentAt` and the request's fallbacks are parameters.
 */
import { isJunkId } from '../identity/junk-ids';
import { guardPayload, MAX_NAME_BYTES, truncateText } from './guards';
import { numericIdText } from './lossless-ids';
import {
  EVENT_TYPES,
  rawEventSchema,
  type EventType,
  type Rejection,
  type Warning,
} from './schema';
import { MAX_FUTURE_MS, parseTimestamp, plausibleTime, resolveEventTime } from './timestamps';

/** Segment's per-event limit. */
export const MAX_EVENT_BYTES = 32 * 1024;

export interface StoredEvent {
  /** Null until the shell assigns a content-derived id (async hashing lives in the shell). */
  messageId: string | null;
  type: EventType;
  event: string | null;
  anonymousId: string | null;
  userId: string | null;
  previousId: string | null;
  ts: number;
  clientTs: string | null;
  properties: Record<string, unknown> | null;
  traits: Record<string, unknown> | null;
  context: Record<string, unknown>;
}

export interface NormalizeOptions {
  receivedAt: number;
  /** `sentAt` of the enclosing batch, used when the event has none of its own. */
  batchSentAt: unknown;
  /** Context fields of the batch envelope, merged under each event's own context. */
  batchContext: Record<string, unknown> | null;
  /** The request's user agent and country, used when the event's context lacks them. */
  requestUserAgent: string | null;
  requestCountry: string | null;
  /** Oldest accepted event time, or null on the historical import path. */
  oldestAllowed: number | null;
  /** Oldest event time the site keeps (its retention), on every path; null: keeps everything. */
  retainedFrom: number | null;
  /** The type implied by a single-event route such as `/v1/track`. */
  impliedType: EventType | null;
}

export type NormalizeResult =
  | { ok: true; event: StoredEvent; warnings: Array<Omit<Warning, 'index'>> }
  | { ok: false; rejection: Omit<Rejection, 'index'> };

const byteLength = (text: string) => new TextEncoder().encode(text).byteLength;

function reject(code: string, path: string, message: string): NormalizeResult {
  return { ok: false, rejection: { code, path, message } };
}

/**
 * Reads an id field: numbers become their decimal text, placeholders are dropped with a warning.
 */
function readId(
  value: unknown,
  field: string,
  warnings: Array<Omit<Warning, 'index'>>,
  holder: unknown,
  /** Why each dropped field was dropped, for a rejection that needs the field. */
  dropped: Map<string, string>,
): string | null {
  if (value === undefined || value === null) return null;
  // Numbers come as the text the request wrote (ids beyond 2^53 stay exact).
  const text =
    typeof value === 'number' ? numericIdText(holder, field, value) : String(value).trim();
  if (isJunkId(text)) {
    const why = `${field} ${JSON.stringify(text)} is a placeholder, not an id`;
    warnings.push({ code: 'junk_id_dropped', message: `${why}; it was dropped` });
    dropped.set(field, why);
    return null;
  }
  if (text.length > 200) {
    warnings.push({ code: 'id_too_long', message: `${field} over 200 characters was dropped` });
    dropped.set(field, `${field} is over 200 characters`);
    return null;
  }
  return text;
}

/**
 * The event's objects as guarded (literal `__proto__` keys kept as data), not as zod returns
 * them: zod's record parsing assigns keys and would drop or mis-assign `__proto__`.
 */
function guardedRecords(value: Record<string, unknown>) {
  const record = (field: unknown) =>
    typeof field === 'object' && field !== null && !Array.isArray(field)
      ? (field as Record<string, unknown>)
      : null;
  return {
    properties: record(value.properties),
    traits: record(value.traits),
    context: record(value.context) ?? {},
  };
}

/** Caps an event name at a length reports can show, on a code-point boundary. */
function capName(
  name: string | undefined,
  warnings: Array<Omit<Warning, 'index'>>,
): string | undefined {
  if (name === undefined) return undefined;
  const cut = truncateText(name, MAX_NAME_BYTES);
  if (cut !== name) {
    warnings.push({
      code: 'event_name_truncated',
      message: `event name over ${MAX_NAME_BYTES} bytes was truncated`,
    });
  }
  return cut;
}

/** A client time far ahead of receipt that no `sentAt` can explain: a clock set to 2099. */
function isFarFuture(timestamp: number | null, sentAt: number | null, receivedAt: number): boolean {
  return timestamp !== null && sentAt === null && timestamp > receivedAt + MAX_FUTURE_MS;
}

/** UTF-8 size of the event as JSON, or null when it nests too deeply to serialise. */
function serializedSize(input: object): number | null {
  try {
    return byteLength(JSON.stringify(input));
  } catch {
    return null;
  }
}

/** Validates and normalises one message. */
export function normalizeEvent(input: unknown, options: NormalizeOptions): NormalizeResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return reject('not_an_object', '', 'each event must be a JSON object');
  }
  const size = serializedSize(input);
  if (size === null) {
    return reject('too_deeply_nested', '', 'event is nested too deeply to read');
  }
  if (size > MAX_EVENT_BYTES) {
    return reject('event_too_large', '', `event is ${size} bytes; the limit is ${MAX_EVENT_BYTES}`);
  }

  const guarded = guardPayload(input as Record<string, unknown>);
  const candidate = { ...guarded.value };
  // A typed route decides the type, as Segment's do: `/v1/track` takes track calls only.
  if (options.impliedType) candidate.type = options.impliedType;
  const parsed = rawEventSchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') ?? '';
    if (path === 'type') {
      return reject('invalid_type', 'type', `type must be one of ${EVENT_TYPES.join(', ')}`);
    }
    return reject(
      'invalid_field',
      path,
      issue ? `${path || 'event'}: ${issue.message}` : 'invalid event',
    );
  }
  const raw = parsed.data;
  const warnings: Array<Omit<Warning, 'index'>> = [...guarded.warnings];

  const dropped = new Map<string, string>();
  const anonymousId = readId(raw.anonymousId, 'anonymousId', warnings, input, dropped);
  const userId = readId(raw.userId, 'userId', warnings, input, dropped);
  const previousId = readId(raw.previousId, 'previousId', warnings, input, dropped);
  if (raw.type === 'alias' && (previousId === null || userId === null)) {
    const field = previousId === null ? 'previousId' : 'userId';
    const why = dropped.get(field) ?? `${field} is missing`;
    return reject('missing_alias_ids', field, `alias needs both previousId and userId: ${why}`);
  }
  if (raw.type === 'group' && (raw.groupId === undefined || raw.groupId === null)) {
    return reject('missing_group_id', 'groupId', 'group calls need a groupId');
  }
  // An explicit null is a front-end bug (C13); an absent userId is an anonymous identify.
  if (raw.type === 'identify' && raw.userId === null) {
    warnings.push({
      code: 'identify_without_user_id',
      message: 'identify sent userId null; it links nothing',
    });
  }
  if (anonymousId === null && userId === null) {
    const idsDropped = dropped.has('anonymousId') || dropped.has('userId');
    const why = idsDropped ? ' (its ids were placeholders or too long)' : '';
    return reject(
      'missing_identity',
      'anonymousId',
      `event has no usable anonymousId or userId${why}`,
    );
  }
  const fullName = raw.type === 'track' ? raw.event?.trim() : (raw.name ?? raw.event)?.trim();
  if (raw.type === 'track' && !fullName) {
    return reject('missing_event_name', 'event', 'track events need a non-empty event name');
  }
  const name = capName(fullName, warnings);

  const timestamp = raw.timestamp == null ? null : parseTimestamp(raw.timestamp);
  if (raw.timestamp != null && timestamp === null) {
    return reject(
      'invalid_timestamp',
      'timestamp',
      'timestamp must be an ISO 8601 date-time or epoch seconds/milliseconds in 2000–2099',
    );
  }
  const sentAtRaw = raw.sentAt ?? options.batchSentAt;
  const sentAt = sentAtRaw == null ? null : parseTimestamp(sentAtRaw);
  const time = resolveEventTime({ timestamp, sentAt, receivedAt: options.receivedAt });
  if (!plausibleTime(time.ts)) {
    // A batch sentAt far ahead of receipt moves its events back by as much (on the import path,
    // which has no oldest time, to before 1970).
    return reject(
      'invalid_timestamp',
      'timestamp',
      'the batch sentAt moves this event time outside 2000–2099; send the right sentAt, or none',
    );
  }
  warnings.push(...time.warnings);
  if (options.oldestAllowed !== null && isFarFuture(timestamp, sentAt, options.receivedAt)) {
    return reject(
      'timestamp_too_far_ahead',
      'timestamp',
      `event time is over ${MAX_FUTURE_MS / 3_600_000} h ahead and no sentAt allows a correction`,
    );
  }
  if (options.oldestAllowed !== null && time.ts < options.oldestAllowed) {
    return reject(
      'timestamp_too_old',
      'timestamp',
      'event is older than the site accepts on a write key; send it through /v1/import ' +
        "(which still refuses events older than the site's retention)",
    );
  }
  if (options.retainedFrom !== null && time.ts < options.retainedFrom) {
    return reject(
      'older_than_retention',
      'timestamp',
      "event is older than the site's retention period (retentionDays) and would be purged",
    );
  }

  const records = guardedRecords(guarded.value);
  const context: Record<string, unknown> = { ...options.batchContext, ...records.context };
  // Client addresses are never stored (docs/API.md, privacy).
  delete context.ip;
  if (typeof context.userAgent !== 'string' && options.requestUserAgent) {
    context.userAgent = options.requestUserAgent;
  }
  const location = (context.location ?? {}) as Record<string, unknown>;
  if (typeof location.country !== 'string' && options.requestCountry) {
    context.location = { ...location, country: options.requestCountry };
  }

  const event: StoredEvent = {
    messageId: raw.messageId ?? null,
    type: raw.type,
    event: name || null,
    anonymousId,
    userId,
    previousId,
    ts: time.ts,
    clientTs: raw.timestamp == null ? null : String(raw.timestamp),
    properties: records.properties,
    traits: records.traits,
    context,
  };
  return { ok: true, event, warnings };
}
