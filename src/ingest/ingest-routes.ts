/**
 * Segment-compatible ingest routes, and the authorised historical import path. Routes
 * authenticate, read the body and hand over to `ingestRequest`.
 */
import { Hono, type Context } from 'hono';
import { requireAdmin } from '../admin/admin-auth';
import { SITE_ID } from '../admin/admin-routes';
import type { Env } from '../env';
import { nowMs } from '../lib/clock';
import { sha256Hex } from '../lib/crypto';
import { stateBatch } from '../identity/state-batch';
import { ApiError, RateLimitedError } from '../lib/http-error';
import { logger } from '../lib/logger';
import { readJsonBody, UnreadableBodyError } from './body';
import { capRaw, recordPending } from './event-store';
import { ingestRequest, type IngestInput, type IngestOutcome } from './ingest-request';
import { fileRefusedStatement } from './refused-store';
import type { EventType } from './schema';
import { requireRetention, retainedFrom } from './retention';
import { siteForWriteKey, type SiteAccess } from './site-keys';

const SINGLE_ROUTES: Record<string, EventType> = {
  track: 'track',
  t: 'track',
  identify: 'identify',
  i: 'identify',
  page: 'page',
  p: 'page',
  screen: 'screen',
  s: 'screen',
  group: 'group',
  g: 'group',
  alias: 'alias',
  a: 'alias',
};

/** The write key from Basic auth (`key:`), else from the body's `writeKey`. */
function writeKeyOf(c: Context, body: unknown): string | null {
  const header = c.req.header('Authorization') ?? '';
  const basic = /^Basic\s+(\S+)$/i.exec(header);
  if (basic?.[1]) {
    try {
      const decoded = atob(basic[1]);
      const key = decoded.split(':')[0];
      if (key) return key;
    } catch {
      return null;
    }
  }
  const fromBody = (body as { writeKey?: unknown } | null)?.writeKey;
  return typeof fromBody === 'string' && fromBody !== '' ? fromBody : null;
}

function requestFacts(c: Context<{ Bindings: Env }>, honorPrivacySignals: boolean) {
  const cf = (c.req.raw as Request & { cf?: { country?: string } }).cf;
  const requestUserAgent = c.req.header('User-Agent') ?? null;
  return {
    requestUserAgent,
    requestCountry: typeof cf?.country === 'string' ? cf.country : null,
    traffic: {
      requestUserAgent,
      // Browsers send Origin on every POST; Node's fetch sends Sec-Fetch-Mode too, so that
      // header says nothing about who is calling.
      fromBrowser: c.req.header('Origin') !== undefined,
      purpose: c.req.header('Sec-Purpose') ?? c.req.header('Purpose') ?? null,
      optOut: c.req.header('Sec-GPC') === '1' || c.req.header('DNT') === '1',
      honorPrivacySignals,
    },
  };
}

/**
 * Refuses a browser beacon from an origin the site has not allowed (C27). Requests without an
 * `Origin` header (servers, SDKs) are not browser beacons and pass.
 */
async function checkOrigin(c: Context<{ Bindings: Env }>, site: SiteAccess, body: unknown) {
  const origin = c.req.header('Origin');
  if (!site.allowedOrigins || origin === undefined || site.allowedOrigins.includes(origin)) return;
  // Kept with its reason like any refused event: the operator sees who copies the snippet.
  await fileRefusedStatement(c.env.DB)
    .bind(
      site.siteId,
      nowMs(c.env),
      'origin_not_allowed',
      '',
      `origin ${origin} is not allowed`,
      capRaw(body),
      'rejected',
      origin,
      null,
    )
    .run();
  throw new ApiError(403, 'origin_not_allowed', `origin ${origin} may not send to this site`);
}

/**
 * Files a body that is not JSON under the site its Basic-auth write key names (rate-limited
 * like any request); with no usable key there is no site to file it under.
 */
async function fileUnreadable(c: Context<{ Bindings: Env }>, error: UnreadableBodyError) {
  const writeKey = writeKeyOf(c, null);
  if (!writeKey) return;
  const site = await siteForWriteKey(c.env.DB, writeKey, nowMs(c.env));
  if (!site) return;
  await checkRate(c, site, await sha256Hex(writeKey));
  await fileRefusedStatement(c.env.DB)
    .bind(
      site.siteId,
      nowMs(c.env),
      'invalid_json',
      '',
      error.message,
      capRaw(error.text),
      'rejected',
      null,
      null,
    )
    .run();
}

/** Counts the request against the site's per-key and per-address limits; 429 when over. */
async function checkRate(c: Context<{ Bindings: Env }>, site: SiteAccess, keyHash: string) {
  if (site.ratePerKey === 0 && site.ratePerAddress === 0) return;
  const address = c.req.header('CF-Connecting-IP');
  const checks = [{ key: `key:${keyHash}`, limit: site.ratePerKey }];
  if (address) checks.push({ key: `addr:${address}`, limit: site.ratePerAddress });
  const limiter = c.env.RATE_LIMITER.get(c.env.RATE_LIMITER.idFromName(site.siteId));
  const verdict = await limiter.hit(checks, nowMs(c.env));
  if (verdict.allowed) return;
  throw new RateLimitedError(verdict.retryAfterSeconds, verdict.refusedBy ?? 'key');
}

/**
 * Runs `ingestRequest` and hands the valid events to the site's Durable Object before the
 * answer, so a 2xx means the object holds them (docs/ARCHITECTURE.md, ingest). The object keeps
 * each event once (by device and message id) and says how many were new, which is the answer's
 * `accepted`; its write cycle, shortly after, writes their progress and copies them to D1's
 * packs. Every path that stores events goes through it, the historical imports included.
 *
 * When the object cannot be reached, the batch is recorded in D1 as pending, with its events,
 * for the cron's reconciler, and every valid event counts as accepted (the object drops
 * duplicates when it takes them); when that write fails too, the request fails (503) and stores
 * nothing. `DEFER_APPLY=1` (the load-shedding switch, and the benchmark's beacon path alone)
 * writes the record and leaves the object out.
 */
export async function ingestAndDeliver(
  c: Context<{ Bindings: Env }>,
  input: Omit<IngestInput, 'pending' | 'guard'>,
): Promise<IngestOutcome> {
  const { siteId } = input;
  const deferred = c.env.DEFER_APPLY === '1';
  const state = c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(siteId));
  const outcome = await ingestRequest({
    ...input,
    pending: deferred,
    guard: deferred ? null : (users, devices) => state.guardFacts(users, devices),
  });
  const events = outcome.stored;
  if (deferred || events.length === 0) return outcome;
  try {
    const fresh = await state.receive(siteId, stateBatch(events));
    outcome.body.duplicates += outcome.body.accepted - fresh;
    outcome.body.accepted = fresh;
  } catch (error) {
    logger.error('ingest.handover_failed', { site: siteId, events: events.length, cause: error });
    try {
      const { batchId } = outcome;
      await recordPending(c.env.DB, { siteId, batchId, receivedAt: input.receivedAt, events });
    } catch (cause) {
      throw new ApiError(503, 'storage_unavailable', 'events could not be stored; retry later', {
        cause,
      });
    }
  }
  return outcome;
}

export const ingestRoutes = new Hono<{ Bindings: Env }>();

ingestRoutes.post('/v1/import', async (c) => {
  const siteId = c.req.query('site') ?? '';
  if (!SITE_ID.test(siteId)) throw new ApiError(400, 'invalid_site_id', 'pass ?site=<siteId>');
  await requireAdmin(c, siteId);
  const retention = await requireRetention(c.env.DB, siteId);

  const body = await readJsonBody(c.req.raw);
  const now = nowMs(c.env);
  const outcome = await ingestAndDeliver(c, {
    db: c.env.DB,
    siteId,
    body,
    impliedType: null,
    receivedAt: now,
    oldestAllowed: null,
    retainedFrom: retainedFrom(now, retention),
    ...requestFacts(c, false),
  });
  return c.json(outcome.body, outcome.status);
});

ingestRoutes.post('/v1/:kind', async (c) => {
  const kind = c.req.param('kind');
  const impliedType = kind === 'batch' || kind === 'b' ? null : SINGLE_ROUTES[kind];
  if (impliedType === undefined) throw new ApiError(404, 'not_found', `no route /v1/${kind}`);

  let body: unknown;
  try {
    body = await readJsonBody(c.req.raw);
  } catch (error) {
    // A beacon's answer is never read: a body that is not JSON is kept with its reason, like
    // any refused event, whenever its write key (Basic auth) names the site.
    if (error instanceof UnreadableBodyError) await fileUnreadable(c, error);
    throw error;
  }
  const writeKey = writeKeyOf(c, body);
  if (!writeKey) {
    throw new ApiError(
      401,
      'missing_write_key',
      'send the write key by Basic auth (key as user name) or as writeKey in the body',
    );
  }
  const now = nowMs(c.env);
  const site = await siteForWriteKey(c.env.DB, writeKey, now);
  if (!site) throw new ApiError(401, 'invalid_write_key', 'the write key is not valid');
  // The rate first: a refused origin writes a row, so refusals must be rate-limited too.
  await checkRate(c, site, await sha256Hex(writeKey));
  await checkOrigin(c, site, body);

  const outcome = await ingestAndDeliver(c, {
    db: c.env.DB,
    siteId: site.siteId,
    body,
    impliedType,
    receivedAt: now,
    oldestAllowed: now - site.backfillDays * 86_400_000,
    retainedFrom: retainedFrom(now, site.retention),
    ...requestFacts(c, site.honorPrivacySignals),
  });
  return c.json(outcome.body, outcome.status);
});
