/**
 * Segment-compatible ingest routes, and the authorised historical import path. Routes
 * authenticate, read the body and hand over to `ingestRequest`.
 */
import { Hono, type Context } from 'hono';
import { requireAdmin } from '../admin/admin-auth';
import { SITE_ID } from '../admin/admin-routes';
import type { Env } from '../env';
import { nowMs } from '../lib/clock';
import { ApiError } from '../lib/http-error';
import { logger } from '../lib/logger';
import { readJsonBody } from './body';
import { ingestRequest, type IngestOutcome } from './ingest-request';
import type { EventType } from './schema';
import { siteForWriteKey } from './site-keys';

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

function requestFacts(c: Context<{ Bindings: Env }>) {
  const cf = (c.req.raw as Request & { cf?: { country?: string } }).cf;
  return {
    requestUserAgent: c.req.header('User-Agent') ?? null,
    requestCountry: typeof cf?.country === 'string' ? cf.country : null,
  };
}

/** Sends the stored events to the site's Durable Object after the response. */
function forward(c: Context<{ Bindings: Env }>, siteId: string, outcome: IngestOutcome): void {
  const db = c.env.DB;
  const work =
    outcome.stored.length > 0
      ? c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(siteId)).apply(
          siteId,
          outcome.batchId,
          outcome.stored,
        )
      : db.prepare('UPDATE batches SET applied_at = ? WHERE id = ?')
          .bind(nowMs(c.env), outcome.batchId)
          .run();
  // A failure leaves the batch pending in D1; the cron's reconciler applies it again.
  c.executionCtx.waitUntil(
    Promise.resolve(work).then(
      () => undefined,
      (error: unknown) => logger.error('ingest.apply_failed', { site: siteId, cause: error }),
    ),
  );
}

export const ingestRoutes = new Hono<{ Bindings: Env }>();

ingestRoutes.post('/v1/import', async (c) => {
  const siteId = c.req.query('site') ?? '';
  if (!SITE_ID.test(siteId)) throw new ApiError(400, 'invalid_site_id', 'pass ?site=<siteId>');
  await requireAdmin(c, siteId);
  const exists = await c.env.DB.prepare('SELECT 1 FROM sites WHERE id = ?').bind(siteId).first();
  if (!exists) throw new ApiError(404, 'site_not_found', `no site ${siteId}`);

  const body = await readJsonBody(c.req.raw);
  const outcome = await ingestRequest({
    db: c.env.DB,
    siteId,
    body,
    impliedType: null,
    receivedAt: nowMs(c.env),
    oldestAllowed: null,
    ...requestFacts(c),
  });
  forward(c, siteId, outcome);
  return c.json(outcome.body, outcome.status);
});

ingestRoutes.post('/v1/:kind', async (c) => {
  const kind = c.req.param('kind');
  const impliedType = kind === 'batch' || kind === 'b' ? null : SINGLE_ROUTES[kind];
  if (impliedType === undefined) throw new ApiError(404, 'not_found', `no route /v1/${kind}`);

  const body = await readJsonBody(c.req.raw);
  const writeKey = writeKeyOf(c, body);
  if (!writeKey) throw new ApiError(
      401,
      'missing_write_key',
      'send the write key by Basic auth (key as user name) or as writeKey in the body',
    );
  const now = nowMs(c.env);
  const site = await siteForWriteKey(c.env.DB, writeKey, now);
  if (!site) throw new ApiError(401, 'invalid_write_key', 'the write key is not valid');

  const outcome = await ingestRequest({
    db: c.env.DB,
    siteId: site.siteId,
    body,
    impliedType,
    receivedAt: now,
    oldestAllowed: now - site.backfillDays * 86_400_000,
    ...requestFacts(c),
  });
  forward(c, site.siteId, outcome);
  return c.json(outcome.body, outcome.status);
});
