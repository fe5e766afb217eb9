// Reading the Puffy event exports (see /work/shared/data/puffy/README.md) and mapping each row
// to Segment-style messages. Shared by `scripts/replay.mjs` and `scripts/oracle.mjs`.
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse';

const CSV_NAME = /^events_.*\.csv$/;

/**
 * The Puffy week's directory for the tests: `GOALSTEP_PUFFY_DIR`, or `../shared/data/puffy` next
 * to the repository (where the workspace keeps it). Throws, naming both, when it is not there.
 */
export function puffyTestDir() {
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const dir = process.env.GOALSTEP_PUFFY_DIR ?? resolve(repoRoot, '..', 'shared', 'data', 'puffy');
  if (!existsSync(dir)) {
    throw new Error(
      `the Puffy data is missing: ${dir} (a checkout that is not next to shared/ sets ` +
        'GOALSTEP_PUFFY_DIR=<the directory of its CSV files>)',
    );
  }
  return dir;
}

/** Sorted absolute paths of the `events_*.csv` files in `dir`. */
export function listCsvFiles(dir) {
  return readdirSync(dir)
    .filter((name) => CSV_NAME.test(name))
    .sort()
    .map((name) => resolve(join(dir, name)));
}

/** Header names as the rest of the code expects them (the export renamed one mid-week). */
function normaliseKey(name) {
  return name === 'client_id' ? 'clientId' : name;
}

/**
 * Yields `{ file, line, row }` for every data row of the CSVs in `dir` (all, or only the
 * basenames in `files`), in file order; `line` is 1-based with the header on line 1.
 */
export async function* readRows(dir, files) {
  let paths = listCsvFiles(dir);
  if (files) {
    const wanted = new Set(files);
    paths = paths.filter((path) => wanted.has(basename(path)));
  }
  for (const path of paths) {
    const file = basename(path);
    const parser = createReadStream(path).pipe(
      parse({ columns: (header) => header.map(normaliseKey), info: true, bom: true }),
    );
    // `info.lines` is where a record ends; a quoted field may span lines, so the record starts
    // one line after the previous record ended.
    let previousEnd = 1;
    for await (const { info, record } of parser) {
      yield { file, line: previousEnd + 1, row: record };
      previousEnd = info.lines;
    }
  }
}

/** The `user_email` hash in a row's `event_data`, or undefined. */
export function emailHash(properties) {
  const hash = properties?.user_email;
  return typeof hash === 'string' && hash !== '' ? hash : undefined;
}

function parseProperties(text) {
  if (text === undefined || text === '') return {};
  try {
    const value = JSON.parse(text);
    // Segment properties are an object; anything else is kept verbatim rather than dropped.
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch {
    // fall through
  }
  return { raw: text };
}

const CAMPAIGN_PARAMS = [
  ['utm_source', 'source'],
  ['utm_medium', 'medium'],
  ['utm_campaign', 'name'],
  ['utm_term', 'term'],
  ['utm_content', 'content'],
];

function pageContext(pageUrl, referrer) {
  const page = {};
  let campaign;
  if (pageUrl) {
    page.url = pageUrl;
    let url;
    try {
      url = new URL(pageUrl);
    } catch {
      url = undefined;
    }
    if (url) {
      page.path = url.pathname;
      if (url.search) page.search = url.search;
      for (const [param, key] of CAMPAIGN_PARAMS) {
        const value = url.searchParams.get(param);
        if (value) (campaign ??= {})[key] = value;
      }
    }
  }
  if (referrer) page.referrer = referrer;
  return { page, campaign };
}

/**
 * Segment-style messages for one `readRows` record: an `identify` first when the row carries an
 * e-mail hash, then the `track` event. Rows without any id are mapped as they are (no ids).
 */
export function toMessages({ file, line, row }) {
  const messageId = `puffy-${file}-${line}`;
  const anonymousId = row.clientId || undefined;
  const properties = parseProperties(row.event_data);
  const userId = emailHash(properties);
  const { page, campaign } = pageContext(row.page_url, row.referrer);
  const context = { page };
  if (campaign) context.campaign = campaign;
  if (row.user_agent) context.userAgent = row.user_agent;

  const messages = [];
  if (userId) {
    const identify = { type: 'identify', userId, timestamp: row.timestamp };
    if (anonymousId) identify.anonymousId = anonymousId;
    identify.messageId = `${messageId}-identify`;
    messages.push(identify);
  }
  const track = { type: 'track', event: row.event_name };
  if (anonymousId) track.anonymousId = anonymousId;
  if (userId) track.userId = userId;
  Object.assign(track, { timestamp: row.timestamp, properties, context, messageId });
  messages.push(track);
  return messages;
}
