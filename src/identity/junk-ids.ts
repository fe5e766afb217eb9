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

/** Format characters (category Cf): zero-width spaces and joiners, soft hyphens, BOMs. */
const FORMAT = /\p{Cf}/gu;

/** One layer of matching straight quotes around the whole id. */
const QUOTED = /^(["'])([^]*)\1$/;

/** Only zeros (`0000`): a default numeric key, never a real user. */
const ALL_ZEROS = /^0+$/;

/**
 * The form an id is compared in: NFKC (fullwidth `ｎｕｌｌ` is `null`), format characters
 * removed (`NULL` followed by a soft hyphen is `NULL`), trimmed, one layer of matching quotes
 * removed (`"null"` written with its quotes), trimmed again, lower-cased. Only the check uses
 * it: a real id is kept exactly as sent.
 */
function foldForCheck(id: string): string {
  const bare = id.normalize('NFKC').replace(FORMAT, '').trim();
  return bare.replace(QUOTED, '$2').trim().toLowerCase();
}

/** True when an id is a known placeholder rather than an identity. */
export function isJunkId(id: string): boolean {
  if (CONTROL.test(id) || INVISIBLE.test(id)) return true;
  const folded = foldForCheck(id);
  return JUNK_IDS.has(folded) || ALL_ZERO_UUID.test(folded) || ALL_ZEROS.test(folded);
}
