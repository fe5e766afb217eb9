/**
 * Guards over untrusted event payloads: prototype-safe copies, depth and size caps, and text
 * truncation on code-point boundaries. Pure; the limits are documented in docs/INGEST.md.
 */
import type { Warning } from './schema';

/** Objects and arrays nested deeper than this are replaced by `null`. */
export const MAX_DEPTH = 8;
/** Keys kept per object; later keys are dropped. */
export const MAX_KEYS = 256;
/** Items kept per array. */
export const MAX_ITEMS = 512;
/** A string value longer than this (UTF-8 bytes) is truncated. */
export const MAX_STRING_BYTES = 8 * 1024;
/** Event names (and page names) are truncated to this many UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;

type GuardWarning = Omit<Warning, 'index'>;

const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** Any surrogate: text without one (nearly all) is well formed as it is. */
const SURROGATE = /[\uD800-\uDFFF]/;

/** UTF-8 byte length of a string (lone surrogates count as U+FFFD, as they are stored). */
export function utf8Length(text: string): number {
  return encoder.encode(text).byteLength;
}

/**
 * Cuts `text` to at most `maxBytes` UTF-8 bytes without splitting a code point: an emoji is kept
 * whole or dropped whole, never left as half a surrogate pair.
 */
export function truncateText(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || utf8Length(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}

/**
 * The first `maxUnits` UTF-16 code units of `text`, one fewer when the cut would leave half of
 * an emoji (a high surrogate) at the end: whole characters only.
 */
export function sliceWhole(text: string, maxUnits: number): string {
  if (text.length <= maxUnits) return text;
  const last = text.charCodeAt(maxUnits - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? maxUnits - 1 : maxUnits);
}

/** Replaces lone surrogates (half an emoji from a broken client) with U+FFFD. */
export function wellFormed(text: string): string {
  return SURROGATE.test(text) ? text.replace(LONE_SURROGATE, '\uFFFD') : text;
}

interface GuardState {
  warnings: GuardWarning[];
  flags: Set<string>;
}

function flag(state: GuardState, code: string, message: string): void {
  if (state.flags.has(code)) return;
  state.flags.add(code);
  state.warnings.push({ code, message });
}

/**
 * A string value or key as stored: well formed, then cut to `maxBytes`, each change flagged
 * (`cut` names the warning for the second).
 */
function guardText(
  text: string,
  maxBytes: number,
  cut: { code: string; message: string },
  state: GuardState,
): string {
  const clean = wellFormed(text);
  // Broken UTF-8 bytes were already turned into U+FFFD when the body was decoded; a lone
  // surrogate (half an emoji written as an escape) is replaced here. Both are flagged.
  if (clean !== text || clean.includes('\uFFFD')) {
    flag(state, 'invalid_unicode_replaced', 'broken text was replaced by U+FFFD');
  }
  const kept = truncateText(clean, maxBytes);
  if (kept !== clean) flag(state, cut.code, cut.message);
  return kept;
}

const STRING_CUT = {
  code: 'string_truncated',
  message: `a string over ${MAX_STRING_BYTES} bytes was truncated`,
};
const KEY_CUT = {
  code: 'key_truncated',
  message: `a key over ${MAX_NAME_BYTES} bytes was truncated`,
};

function guardValue(value: unknown, depth: number, state: GuardState): unknown {
  if (typeof value === 'string') return guardText(value, MAX_STRING_BYTES, STRING_CUT, state);
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) {
    flag(state, 'nesting_capped', `values nested deeper than ${MAX_DEPTH} levels became null`);
    return null;
  }
  if (Array.isArray(value)) {
    if (value.length > MAX_ITEMS) {
      flag(state, 'array_capped', `arrays were cut to ${MAX_ITEMS} items`);
    }
    return value.slice(0, MAX_ITEMS).map((item) => guardValue(item, depth + 1, state));
  }
  return guardObject(value as Record<string, unknown>, depth, state);
}

/**
 * Copies an object key by key, so that keys such as `__proto__`, `constructor` and `prototype`
 * stay literal data and never reach a prototype: `__proto__`, the one key whose assignment sets
 * the prototype, with `defineProperty`, every other by assignment (an own data property too, and
 * much quicker on the ingest path).
 */
function guardObject(
  value: Record<string, unknown>,
  depth: number,
  state: GuardState,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = Object.keys(value);
  if (keys.length > MAX_KEYS) {
    flag(state, 'keys_capped', `objects were cut to their first ${MAX_KEYS} keys`);
  }
  for (const key of keys.slice(0, MAX_KEYS)) {
    const safeKey = guardText(key, MAX_NAME_BYTES, KEY_CUT, state);
    if (Object.hasOwn(out, safeKey)) {
      flag(state, 'keys_merged', 'keys that were the same once repaired or cut: the last was kept');
    }
    const guarded = guardValue(value[key], depth + 1, state);
    if (safeKey === '__proto__') {
      Object.defineProperty(out, safeKey, {
        value: guarded,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      out[safeKey] = guarded;
    }
  }
  return out;
}

/** A guarded copy of one event object, with a warning per kind of change made. */
export function guardPayload(input: Record<string, unknown>): {
  value: Record<string, unknown>;
  warnings: GuardWarning[];
} {
  const state: GuardState = { warnings: [], flags: new Set() };
  return { value: guardObject(input, 0, state), warnings: state.warnings };
}
