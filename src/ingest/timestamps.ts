import { isRealDate } from '../lib/dates';

/**
 * Event-time parsing and clock-skew rules (docs/API.md, "Event time"). Pure: `receivedAt` is a
 * parameter.
 */

const ISO_INSTANT =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** Epoch values below this are seconds, at or above it milliseconds (year 5138 in seconds). */
const EPOCH_MS_THRESHOLD = 1e11;
/** Event times outside [2000, 2100) are not plausible and are rejected, never stored. */
const EARLIEST = Date.UTC(2000, 0, 1);
const LATEST = Date.UTC(2100, 0, 1);

/** Whether an event time (after any correction) is one goalstep stores: in [2000, 2100). */
export const plausibleTime = (ts: number) => ts >= EARLIEST && ts < LATEST;

/**
 * A client clock ahead of the server at all (`sentAt` after receipt cannot happen otherwise) is
 * corrected using `sentAt`: the whole batch moves by one offset, so its order is kept and no
 * event lands after receipt. Clamping instead would pile a batch onto one instant.
 */
export const AHEAD_TOLERANCE_MS = 0;
/**
 * A client clock behind by more than this is corrected. Smaller gaps are network transit, which
 * must never be folded into event time (edge case C02).
 */
export const BEHIND_TOLERANCE_MS = 10 * 60_000;

/**
 * On a public write key, an event time more than this ahead of receipt, with no `sentAt` to
 * correct it by, is rejected (`timestamp_too_far_ahead`) rather than guessed.
 */
export const MAX_FUTURE_MS = 24 * 3_600_000;

/**
 * Parses an ISO 8601 string (with or without offset; none means UTC) or epoch seconds or
 * milliseconds. Returns null for anything else: times are never guessed.
 */
export function parseTimestamp(value: unknown): number | null {
  const parsed = parseTime(value);
  return parsed !== null && plausibleTime(parsed) ? parsed : null;
}

function parseTime(value: unknown): number | null {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) return null;
    return Math.round(value < EPOCH_MS_THRESHOLD ? value * 1000 : value);
  }
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (/^\d{9,13}(?:\.\d+)?$/.test(text)) return parseTime(Number(text));
  // Date.parse rolls 2025-02-30 over to March 2 and reads hour 24 as the next day.
  if (!ISO_INSTANT.test(text) || !isRealDate(text) || Number(text.slice(11, 13)) > 23) return null;
  const hasOffset = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(text) && text.length > 10;
  const normalised = text.replace(' ', 'T').replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const parsed = Date.parse(hasOffset || text.length === 10 ? normalised : `${normalised}Z`);
  return Number.isNaN(parsed) ? null : parsed;
}

export interface EventTimeInput {
  timestamp: number | null;
  sentAt: number | null;
  receivedAt: number;
}

export interface EventTime {
  ts: number;
  warnings: Array<{ code: string; message: string }>;
}

/** A clock difference as a person reads it: milliseconds under ten seconds, else seconds. */
const clockOff = (ms: number) =>
  Math.abs(ms) < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;

/**
 * Decides an event's stored time. The offset `receivedAt - sentAt` is applied only when the
 * client clock is clearly wrong; a time after the event's own `sentAt`, or after receipt, is
 * clamped and flagged, so nothing is stored later than its ingest time.
 */
export function resolveEventTime({ timestamp, sentAt, receivedAt }: EventTimeInput): EventTime {
  const warnings: EventTime['warnings'] = [];
  if (timestamp === null) return { ts: sentAt ?? receivedAt, warnings };

  let ts = timestamp;
  if (sentAt !== null) {
    if (ts > sentAt) {
      warnings.push({
        code: 'timestamp_after_sent_at',
        message: 'timestamp was later than the batch sentAt; clamped to sentAt',
      });
      ts = sentAt;
    }
    const offset = receivedAt - sentAt;
    if (offset < -AHEAD_TOLERANCE_MS || offset > BEHIND_TOLERANCE_MS) {
      ts += offset;
      warnings.push({
        code: 'clock_skew_corrected',
        message: `client clock off by ${clockOff(-offset)}; corrected using sentAt`,
      });
    }
  }
  if (ts > receivedAt) {
    warnings.push({
      code: 'timestamp_in_future',
      message: 'timestamp was after the time of receipt; clamped to the time of receipt',
    });
    ts = receivedAt;
  }
  return { ts, warnings };
}
