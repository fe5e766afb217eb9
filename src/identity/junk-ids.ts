/**
 * Ids that front-end bugs send instead of a real id. Such an id is dropped with a warning and
 * never used to stitch people together (docs/IDENTITY.md): one shared placeholder would
 * otherwise merge every visitor that sent it into one person.
 */
const JUNK_IDS = new Set([
  '',
  'null',
  'undefined',
  'none',
  'nil',
  'nan',
  'anonymous',
  'anon',
  'guest',
  'unknown',
  'user',
  'id',
  'email',
  'test',
  '0',
  // JSON allows -0: a number id of -0 is read as the text "-0".
  '-0',
  '-1',
  '[object object]',
  'true',
  'false',
  '""',
  "''",
  '<nil>',
  'n/a',
  '[]',
  '{}',
]);

/** The nil UUID, with or without dashes, bare or in the braces of Microsoft's GUID text. */
const ALL_ZERO_UUID = /^(?:0{8}-?0{4}-?0{4}-?0{4}-?0{12}|\{0{8}-?0{4}-?0{4}-?0{4}-?0{12}\})$/;

/**
 * A control character anywhere (C0, DEL, C1): `trim` keeps NUL, and an id that carries one is
 * a buffer or encoding bug, not an identity.
 */
const CONTROL = /\p{Cc}/u;

/** Nothing visible: whitespace and format characters (zero-width space, word joiner) only. */
const INVISIBLE = /^[\s\p{Cf}]*$/u;

/** True when an id is a known placeholder rather than an identity. */
export function isJunkId(id: string): boolean {
  const folded = id.trim().toLowerCase();
  return (
    JUNK_IDS.has(folded) ||
    ALL_ZERO_UUID.test(folded) ||
    CONTROL.test(folded) ||
    INVISIBLE.test(folded)
  );
}
