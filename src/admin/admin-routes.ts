/** The admin API: sites, goals, shares and operational status, behind bearer tokens. */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Env } from '../env';
import { checkDefinition, goalInputSchema } from '../funnel/definition';
import { listCurrentGoals, saveGoal } from '../funnel/goal-store';
import { nowMs } from '../lib/clock';
import { randomToken, sha256Hex } from '../lib/crypto';
import { ApiError } from '../lib/http-error';
import { auditStatement, requireAdmin, type Admin } from './admin-auth';

export const SITE_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

export const siteInputSchema = z
  .object({
    name: z.string().min(1).max(200),
    /** Registers a chosen key (development seeding); otherwise a key is generated. */
    writeKey: z.string().min(16).max(200).optional(),
    backfillDays: z.number().int().min(0).max(3650).optional(),
  })
  .meta({ id: 'SiteInput' });

export const shareInputSchema = z
  .object({
    token: z.string().min(16).max(200).optional(),
    goalIds: z.array(z.string()).min(1).max(100).optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .meta({ id: 'ShareInput' });

/** Parses a JSON admin body with a zod schema; a bad body is a 400 naming the first problem. */
export async function parseJson<T extends z.ZodType>(
  request: Request,
  schema: T,
  /** A `JSON.parse` reviver, for bodies whose numbers must be read from their text. */
  reviver?: Parameters<typeof JSON.parse>[1],
): Promise<z.infer<T>> {
  let body: unknown;
  try {
    body = JSON.parse(await request.text(), reviver);
  } catch (error) {
    throw new ApiError(400, 'invalid_json', 'request body is not valid JSON', { cause: error });
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') ?? '';
    throw new ApiError(400, 'invalid_field', `${path || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** A `limit` query parameter: a whole number from 1 to `max`, `fallback` when absent; else 400. */
export function limitParam(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const limit = Number(value);
  if (!/^\d+$/.test(value) || limit < 1 || limit > max) {
    throw new ApiError(400, 'invalid_limit', `limit must be a whole number from 1 to ${max}`);
  }
  return limit;
}

export function siteParam(siteId: string): string {
  if (!SITE_ID.test(siteId)) throw new ApiError(400, 'invalid_site_id', 'site ids are [a-z0-9_-]');
  return siteId;
}

export async function requireSite(db: D1Database, siteId: string): Promise<void> {
  const row = await db.prepare('SELECT 1 FROM sites WHERE id = ?').bind(siteId).first();
  if (!row) throw new ApiError(404, 'site_not_found', `no site ${siteId}`);
}

/**
 * The `:siteId` of a route on an existing site, and the admin acting on it: `400
 * invalid_site_id`, then `requireAdmin`'s 401 / 403, then `404 site_not_found`, in that order.
 */
export async function siteAdmin(
  c: Context<{ Bindings: Env }>,
): Promise<{ siteId: string; admin: Admin }> {
  const siteId = siteParam(c.req.param('siteId') ?? '');
  const admin = await requireAdmin(c, siteId);
  await requireSite(c.env.DB, siteId);
  return { siteId, admin };
}

export const adminRoutes = new Hono<{ Bindings: Env }>();

adminRoutes.put('/admin/sites/:siteId', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  const admin = await requireAdmin(c, siteId);
  const input = await parseJson(c.req.raw, siteInputSchema);
  const now = nowMs(c.env);
  const writeKey = input.writeKey ?? randomToken('wk');
  await c.env.DB.batch([
    auditStatement(c.env.DB, admin, {
      action: 'site.put',
      siteId,
      at: now,
      detail: { name: input.name, backfillDays: input.backfillDays ?? 7 },
    }),
    c.env.DB.prepare(
      `INSERT INTO sites (id, name, backfill_days, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, backfill_days = excluded.backfill_days`,
    ).bind(siteId, input.name, input.backfillDays ?? 7, now),
    c.env.DB.prepare(
      `INSERT INTO write_keys (key_hash, site_id, created_at) VALUES (?, ?, ?)
       ON CONFLICT (key_hash) DO NOTHING`,
    ).bind(await sha256Hex(writeKey), siteId, now),
  ]);
  const owner = await c.env.DB.prepare('SELECT site_id FROM write_keys WHERE key_hash = ?')
    .bind(await sha256Hex(writeKey))
    .first<{ site_id: string }>();
  if (owner?.site_id !== siteId) {
    throw new ApiError(409, 'write_key_taken', 'that write key belongs to another site');
  }
  return c.json({ siteId, writeKey: input.writeKey ? undefined : writeKey });
});

adminRoutes.put('/admin/sites/:siteId/goals/:goalId', async (c) => {
  const { siteId, admin } = await siteAdmin(c);
  const goalId = c.req.param('goalId');
  if (!SITE_ID.test(goalId)) throw new ApiError(400, 'invalid_goal_id', 'goal ids are [a-z0-9_-]');
  const goal = await parseJson(c.req.raw, goalInputSchema);
  const issue = checkDefinition(goal)[0];
  if (issue) throw new ApiError(400, issue.code, `${issue.path}: ${issue.message}`);

  const saved = await saveGoal(c.env.DB, {
    siteId,
    goalId,
    goal,
    createdBy: admin.name,
    now: nowMs(c.env),
  });
  await c.env.DB.batch([
    auditStatement(c.env.DB, admin, {
      action: 'goal.put',
      siteId,
      at: nowMs(c.env),
      detail: { goalId, version: saved.version, created: saved.created },
    }),
  ]);
  if (saved.created) {
    // Progress for the new version is rebuilt from the events the site already holds.
    const state = c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(siteId));
    c.executionCtx.waitUntil(state.goalsChanged(siteId).then(() => undefined));
  }
  return c.json({ goalId, version: saved.version, created: saved.created });
});

adminRoutes.get('/admin/sites/:siteId/goals', async (c) => {
  const { siteId } = await siteAdmin(c);
  const goals = await listCurrentGoals(c.env.DB, siteId);
  return c.json({ goals });
});

adminRoutes.post('/admin/sites/:siteId/shares', async (c) => {
  const { siteId, admin } = await siteAdmin(c);
  const input = await parseJson(c.req.raw, shareInputSchema);
  // A share that could never open anything is refused, not created dead.
  if (input.expiresAt && Date.parse(input.expiresAt) <= nowMs(c.env)) {
    throw new ApiError(400, 'invalid_expiry', 'expiresAt must be in the future');
  }
  if (input.goalIds) {
    const { results } = await c.env.DB.prepare(
      'SELECT id FROM goals WHERE site_id = ? AND id IN (SELECT value FROM json_each(?))',
    )
      .bind(siteId, JSON.stringify(input.goalIds))
      .all<{ id: string }>();
    const known = new Set(results.map((row) => row.id));
    const missing = input.goalIds.find((id) => !known.has(id));
    if (missing !== undefined) {
      throw new ApiError(404, 'goal_not_found', `site ${siteId} has no goal ${missing}`);
    }
  }
  const token = input.token ?? randomToken('sh');
  const tokenHash = await sha256Hex(token);

  const existing = await c.env.DB.prepare(
    `SELECT id, site_id, goal_ids, expires_at FROM shares
     WHERE token_hash = ? AND revoked_at IS NULL`,
  )
    .bind(tokenHash)
    .first<{ id: string; site_id: string; goal_ids: string | null; expires_at: number | null }>();
  if (existing) {
    // A chosen token names one share: asking again with other restrictions is a conflict, not
    // a silent no-op. (Seeding re-sends the same body, which stays idempotent.)
    const same =
      existing.site_id === siteId &&
      existing.goal_ids === (input.goalIds ? JSON.stringify(input.goalIds) : null) &&
      existing.expires_at === (input.expiresAt ? Date.parse(input.expiresAt) : null);
    if (!same) throw new ApiError(409, 'share_token_taken', 'that token is already in use');
    return c.json({ id: existing.id, token: input.token ? undefined : token });
  }
  const id = crypto.randomUUID();
  await c.env.DB.batch([
    c.env.DB.prepare(
      `INSERT INTO shares (id, token_hash, site_id, goal_ids, expires_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ).bind(
      id,
      tokenHash,
      siteId,
      input.goalIds ? JSON.stringify(input.goalIds) : null,
      input.expiresAt ? Date.parse(input.expiresAt) : null,
      nowMs(c.env),
    ),
    auditStatement(c.env.DB, admin, {
      action: 'share.create',
      siteId,
      at: nowMs(c.env),
      detail: { id, goalIds: input.goalIds ?? null },
    }),
  ]);
  return c.json({ id, token: input.token ? undefined : token }, 201);
});

adminRoutes.get('/admin/sites/:siteId/shares', async (c) => {
  const { siteId } = await siteAdmin(c);
  // Never the token nor its hash: a listing must not help anyone open a share.
  const { results } = await c.env.DB.prepare(
    `SELECT id, goal_ids, created_at, expires_at, revoked_at FROM shares
     WHERE site_id = ? ORDER BY created_at DESC, id`,
  )
    .bind(siteId)
    .all<{
      id: string;
      goal_ids: string | null;
      created_at: number;
      expires_at: number | null;
      revoked_at: number | null;
    }>();
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return c.json({
    shares: results.map((row) => ({
      id: row.id,
      goalIds: row.goal_ids ? (JSON.parse(row.goal_ids) as string[]) : null,
      createdAt: iso(row.created_at),
      expiresAt: iso(row.expires_at),
      revokedAt: iso(row.revoked_at),
    })),
  });
});

adminRoutes.delete('/admin/sites/:siteId/shares/:shareId', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  const admin = await requireAdmin(c, siteId);
  const [result] = await c.env.DB.batch([
    c.env.DB.prepare(
      'UPDATE shares SET revoked_at = ? WHERE id = ? AND site_id = ? AND revoked_at IS NULL',
    ).bind(nowMs(c.env), c.req.param('shareId'), siteId),
    auditStatement(
      c.env.DB,
      admin,
      {
        action: 'share.revoke',
        siteId,
        at: nowMs(c.env),
        detail: { id: c.req.param('shareId') },
      },
      true,
    ),
  ]);
  if (!result?.meta.changes) throw new ApiError(404, 'share_not_found', 'no such share');
  return c.json({ revoked: true });
});

/**
 * Accepted requests whose progress rows are not written yet: batches the site object has not
 * taken (the reconciler's work: it deletes a record once applied, so every row left is pending)
 * and requests it took and has not written (docs/API.md, status). Counts no stored event: the
 * batch records of every site are read (no index by site: the table holds only what waits for
 * the reconciler, normally nothing).
 */
async function pendingBatches(env: Env, siteId: string): Promise<number> {
  const state = env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));
  const [records, taken] = await Promise.all([
    // A batch recorded in parts (`<id>`, `<id>.1`…, src/ingest/event-store.ts) counts once.
    env.DB.prepare(
      `SELECT COUNT(DISTINCT CASE WHEN instr(id, '.') > 0 THEN substr(id, 1, instr(id, '.') - 1)
         ELSE id END) AS n FROM batches WHERE site_id = ?`,
    )
      .bind(siteId)
      .first<{ n: number }>(),
    state.pending(),
  ]);
  return (records?.n ?? 0) + taken;
}

adminRoutes.get('/admin/sites/:siteId/pending', async (c) => {
  // A mistyped site would read 0 pending: "written", when nothing was.
  const { siteId } = await siteAdmin(c);
  return c.json({ pendingBatches: await pendingBatches(c.env, siteId) });
});

adminRoutes.get('/admin/sites/:siteId/status', async (c) => {
  const { siteId } = await siteAdmin(c);
  const [[events, rejected, filtered], pending] = await Promise.all([
    c.env.DB.batch<{ n: number }>([
      // Every stored event, read from its pack: this grows with the events stored
      // (`/pending` is the one to poll).
      c.env.DB.prepare('SELECT COUNT(*) AS n FROM events WHERE site_id = ?').bind(siteId),
      c.env.DB.prepare(
        "SELECT COUNT(*) AS n FROM rejected_events WHERE site_id = ? AND disposition = 'rejected'",
      ).bind(siteId),
      c.env.DB.prepare(
        "SELECT COUNT(*) AS n FROM rejected_events WHERE site_id = ? AND disposition = 'filtered'",
      ).bind(siteId),
    ]),
    pendingBatches(c.env, siteId),
  ]);
  return c.json({
    events: events?.results[0]?.n ?? 0,
    pendingBatches: pending,
    rejected: rejected?.results[0]?.n ?? 0,
    filtered: filtered?.results[0]?.n ?? 0,
  });
});
