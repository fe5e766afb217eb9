import { isRealDate } from '../lib/dates';

/**
 * Report ranges: `from` (inclusive) and `to` (exclusive) as ISO dates or date-times, read in an
 * IANA time zone. Pure: `now` is a parameter.
 */

export interface ReportRange {
  from: number;
  to: number;
  tz: string;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/;
const WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** Default range length when `from` is absent: 30 days before `to`. */
const DEFAULT_DAYS = 30;

export class RangeError400 extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Checks an IANA zone name by asking the runtime's time-zone database. */
export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The zone's offset from UTC at an instant, in ms (positive east of Greenwich). */
function offsetAt(tz: string, utcMs: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(utcMs));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wallAsUtc = Date.UTC(
    get('year'),
    get('month') - 1,
    get('day'),
    get('hour'),
    get('minute'),
    get('second'),
  );
  return wallAsUtc - Math.floor(utcMs / 1000) * 1000;
}

/**
 * The instant at which the wall clock in `tz` shows `wallMs` (a wall time encoded as if UTC).
 * A wall time that occurs twice (clocks go back) is its earlier instant; one that never occurs
 * (clocks go forward) is read with the offset before the change, so it lands just after the gap
 * (02:30 on a spring-forward night in New York is 03:30 daylight time).
 */
export function zonedWallToUtc(wallMs: number, tz: string): number {
  const HALF_DAY = 43_200_000;
  const before = wallMs - offsetAt(tz, wallMs - HALF_DAY);
  const after = wallMs - offsetAt(tz, wallMs + HALF_DAY);
  const valid = [before, after].filter((instant) => instant + offsetAt(tz, instant) === wallMs);
  return valid.length > 0 ? Math.min(...valid) : before;
}

function parseBound(value: string, tz: string, name: string): number {
  const text = value.trim();
  if (!isRealDate(text) || Number(text.slice(0, 4)) < 1970) {
    throw new RangeError400(
      'invalid_range',
      `${name} must be a real date from 1970 on, got ${value}`,
    );
  }
  if (WITH_OFFSET.test(text)) return Date.parse(text);
  const date = DATE.exec(text);
  if (date) return zonedWallToUtc(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!), tz);
  const local = LOCAL_DATE_TIME.exec(text);
  if (local) {
    const [, y, mo, d, h, mi, s, ms] = local;
    const wall = Date.UTC(
      +y!,
      +mo! - 1,
      +d!,
      +h!,
      +mi!,
      +(s ?? 0),
      +(ms ?? 0).toString().padEnd(3, '0'),
    );
    return zonedWallToUtc(wall, tz);
  }
  throw new RangeError400(
    'invalid_range',
    `${name} must be an ISO date or date-time, got ${value}`,
  );
}

/** Resolves the query's range; without `to` it ends at the next midnight in `tz`. */
export function resolveRange(
  query: { from?: string; to?: string; tz?: string },
  now: number,
): ReportRange {
  const tz = query.tz?.trim() || 'UTC';
  if (!isValidTimeZone(tz)) throw new RangeError400('invalid_tz', `unknown time zone ${tz}`);

  let to: number;
  if (query.to) {
    to = parseBound(query.to, tz, 'to');
  } else {
    const wallNow = now + offsetAt(tz, now);
    const nextMidnight = Math.floor(wallNow / 86_400_000 + 1) * 86_400_000;
    to = zonedWallToUtc(nextMidnight, tz);
  }
  const from = query.from
    ? parseBound(query.from, tz, 'from')
    : zonedWallToUtc(to + offsetAt(tz, to) - DEFAULT_DAYS * 86_400_000, tz);
  if (!(from < to)) throw new RangeError400('invalid_range', 'from must be before to');
  return { from, to, tz };
}

/** A range bound written back as an ISO instant. */
export const isoInstant = (ms: number) => new Date(ms).toISOString();
