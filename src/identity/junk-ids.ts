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

const ALL_ZERO_UUID = /^0{8}-?0{4}-?0{4}-?0{4}-?0{12}$/;

/** True when an id is a known placeholder rather than an identity. */
export function isJunkId(id: string): boolean {
  const folded = id.trim().toLowerCase();
  return JUNK_IDS.has(folded) || ALL_ZERO_UUID.test(folded);
}
