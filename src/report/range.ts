import { isRealDate } from '../lib/dates';
import { sliceWhole } from '../ingest/guards';
import { memoize } from '../lib/memo';

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
  return canonicalTimeZone(tz) !== null;
}

/** Zones (and spellings of them) whose answers are kept per isolate. */
const ZONES_KEPT = 200;

/** The runtime's own name for a zone, or null when it does not know it. */
function runtimeZone(tz: string): string | null {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

/**
 * Zones renamed in the IANA database, as [old name, current name]: the runtime's (ICU's)
 * database still gives the old name as the canonical one (`Asia/Kolkata` resolves to
 * `Asia/Calcutta`), and a report names them as people write them today, wherever the runtime
 * knows the current name. The name the runtime gives the current one maps to it as well.
 */
const RENAMED: ReadonlyArray<readonly [string, string]> = [
  ['Asia/Calcutta', 'Asia/Kolkata'],
  ['Asia/Katmandu', 'Asia/Kathmandu'],
  ['Asia/Saigon', 'Asia/Ho_Chi_Minh'],
  ['Asia/Rangoon', 'Asia/Yangon'],
  ['Europe/Kiev', 'Europe/Kyiv'],
  ['America/Godthab', 'America/Nuuk'],
  ['Atlantic/Faeroe', 'Atlantic/Faroe'],
  ['Pacific/Enderbury', 'Pacific/Kanton'],
  ['Pacific/Truk', 'Pacific/Chuuk'],
  ['Pacific/Ponape', 'Pacific/Pohnpei'],
  ['Africa/Asmera', 'Africa/Asmara'],
  ['America/Buenos_Aires', 'America/Argentina/Buenos_Aires'],
  ['America/Catamarca', 'America/Argentina/Catamarca'],
  ['America/Cordoba', 'America/Argentina/Cordoba'],
  ['America/Jujuy', 'America/Argentina/Jujuy'],
  ['America/Mendoza', 'America/Argentina/Mendoza'],
  ['America/Indianapolis', 'America/Indiana/Indianapolis'],
  ['America/Louisville', 'America/Kentucky/Louisville'],
  ['America/Coral_Harbour', 'America/Atikokan'],
];
let currentNames: Map<string, string> | undefined;

/**
 * The name a report gives a zone (`europe/berlin` is `Europe/Berlin`, `Asia/Calcutta` is
 * `Asia/Kolkata`), or null when the runtime does not know it: two spellings of one zone make
 * one view.
 */
export const canonicalTimeZone = memoize((tz: string): string | null => {
  const name = runtimeZone(tz);
  if (name === null) return null;
  currentNames ??= new Map(
    RENAMED.flatMap(([old, current]) => {
      // Only to a name the runtime can format; under it, the runtime's own name for it too.
      const known = runtimeZone(current);
      if (known === null) return [];
      return [[old, current] as const, [known, current] as const];
    }),
  );
  return currentNames.get(name) ?? name;
}, ZONES_KEPT);

/**
 * The wall-clock formatter of a zone. Building one costs about ten times a use of it (ICU), and
 * a range is resolved with up to nine offsets on every report request, cached ones included.
 */
const wallFormat = memoize(
  (tz: string) =>
    new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    }),
  ZONES_KEPT,
);

/** The zone's offset from UTC at an instant, in ms (positive east of Greenwich). */
function offsetAt(tz: string, utcMs: number): number {
  const parts = wallFormat(tz).formatToParts(new Date(utcMs));
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

/** Hours 00–23, minutes and seconds 00–59: `Date.UTC` would roll 25:00 or :60 over. */
function isRealTime(text: string): boolean {
  const time = /T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(text);
  if (!time) return true;
  const [, h, mi, s] = time;
  return Number(h) <= 23 && Number(mi) <= 59 && Number(s ?? 0) <= 59;
}

/**
 * A client's text as an error message quotes it: its first 100 characters at most (whole ones),
 * so the message does not grow with what a client sends.
 */
function quoted(text: string): string {
  return text.length > 100 ? `${sliceWhole(text, 100)}…` : text;
}

function parseBound(value: string, tz: string, name: string): number {
  const text = value.trim();
  if (!isRealDate(text) || Number(text.slice(0, 4)) < 1970) {
    throw new RangeError400(
      'invalid_range',
      `${name} must be a real date from 1970 on, got ${quoted(value)}`,
    );
  }
  if (!isRealTime(text)) {
    throw new RangeError400(
      'invalid_time',
      `${name} has a time that does not exist: ${quoted(value)}`,
    );
  }
  if (WITH_OFFSET.test(text)) {
    const instant = Date.parse(text);
    if (Number.isNaN(instant)) {
      throw new RangeError400(
        'invalid_time',
        `${name} has an offset that does not exist: ${quoted(value)}`,
      );
    }
    return instant;
  }
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
    `${name} must be an ISO date or date-time, got ${quoted(value)}`,
  );
}

/** Resolves the query's range; without `to` it ends at the next midnight in `tz`. */
export function resolveRange(
  query: { from?: string; to?: string; tz?: string },
  now: number,
): ReportRange {
  const asked = query.tz?.trim() || 'UTC';
  const tz = canonicalTimeZone(asked);
  if (tz === null) {
    throw new RangeError400('invalid_tz', `unknown time zone ${quoted(asked)}`);
  }

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

/** The wall clock in `tz` at an instant, encoded as if UTC (for date arithmetic). */
const wallOf = (ms: number, tz: string) => ms + offsetAt(tz, ms);

/**
 * A range bound as the form and links write it: the local date when the bound is a local
 * midnight, else the local date-time (seconds and milliseconds only when present).
 */
export function localBound(ms: number, tz: string): string {
  const wall = new Date(wallOf(ms, tz)).toISOString();
  if (wall.endsWith('T00:00:00.000Z')) return wall.slice(0, 10);
  if (wall.endsWith(':00.000Z')) return wall.slice(0, 16);
  if (wall.endsWith('.000Z')) return wall.slice(0, 19);
  return wall.slice(0, 23);
}

const DAY_FORMAT = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'UTC',
  day: 'numeric',
  month: 'short',
});
const TIME_FORMAT = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'UTC',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
});

/**
 * The range as people read it, in its own zone: "23 Feb – 1 Mar 2025 (Europe/Berlin)" for whole
 * days (the last day shown is the one before the exclusive end), with times when a bound is not
 * a local midnight ("23 Feb 2025 10:30 – 24 Feb 2025 09:00 (UTC)").
 */
export function formatRange(range: ReportRange): string {
  const from = wallOf(range.from, range.tz);
  const to = wallOf(range.to, range.tz);
  const year = (wall: number) => new Date(wall).getUTCFullYear();
  const day = (wall: number) => DAY_FORMAT.format(new Date(wall));
  const zone = `(${range.tz})`;
  if (from % 86_400_000 === 0 && to % 86_400_000 === 0) {
    const last = to - 86_400_000;
    if (last <= from) return `${day(from)} ${year(from)} ${zone}`;
    const start = year(from) === year(last) ? day(from) : `${day(from)} ${year(from)}`;
    return `${start} – ${day(last)} ${year(last)} ${zone}`;
  }
  const stamp = (wall: number) =>
    `${day(wall)} ${year(wall)} ${TIME_FORMAT.format(new Date(wall))}`;
  return `${stamp(from)} – ${stamp(to)} ${zone}`;
}
