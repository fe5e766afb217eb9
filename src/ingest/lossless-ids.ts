/**
 * Id fields written as JSON numbers, read losslessly from the request text. `JSON.parse` turns
 * `12345678901234567890` into a rounded double before any rule can see it, so the body is
 * parsed with a reviver that remembers the source text of numeric id fields (docs/IDENTITY.md).
 */
const ID_FIELDS = new Set(['anonymousId', 'userId', 'previousId']);

const INTEGER_TEXT = /^-?\d+$/;

/** Source text of numeric id fields, per parsed object. */
const written = new WeakMap<object, Map<string, string>>();

/** A `JSON.parse` reviver that records the text of numeric id fields; values pass unchanged. */
export function idReviver(
  this: unknown,
  key: string,
  value: unknown,
  context?: { source?: string },
): unknown {
  if (typeof value !== 'number' || !ID_FIELDS.has(key)) return value;
  if (typeof this !== 'object' || this === null || typeof context?.source !== 'string') {
    return value;
  }
  let fields = written.get(this);
  if (!fields) written.set(this, (fields = new Map()));
  fields.set(key, context.source);
  return value;
}

/**
 * The id text of a numeric id field: the integer exactly as written, or JavaScript's number text
 * for anything else (`4.0` → `"4"`).
 */
export function numericIdText(holder: unknown, field: string, value: number): string {
  const source =
    typeof holder === 'object' && holder !== null ? written.get(holder)?.get(field) : undefined;
  return idTextOfNumber(value, source);
}

/** The id text of a number given the JSON text it was written as, when known. */
export function idTextOfNumber(value: number, source: string | undefined): string {
  return source !== undefined && INTEGER_TEXT.test(source) ? source : String(value);
}
