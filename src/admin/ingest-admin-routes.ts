/**
 * Admin routes of the ingest area: rejected and filtered events (list, re-submit after a fix),
 * ingest settings, write keys (rotate with a grace period, revoke), admin tokens, the audit log,
 * and one person's data (export, erase). Every change is written with its audit record.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Env } from '../env';
import { ingestAndDeliver } from '../ingest/ingest-routes';
import { erasePerson, exportPerson } from '../ingest/person-data';
import { rowsWithIds } from '../ingest/refused-store';
import { requireRetention, retainedFrom } from '../ingest/retention';
import { clearWriteKeyCache } from '../ingest/site-keys';
import { nowMs } from '../lib/clock';
import { randomToken, sha256Hex } from '../lib/crypto';
import { ApiError } from '../lib/http-error';
import { auditStatement, requireAdmin, type Admin } from './admin-auth';
import { limitParam, parseJson, SITE_ID, siteAdmin, siteParam } from './admin-routes';

type AppContext = Context<{ Bindings: Env }>;

export const ingestSettingsSchema = z
  .object({
    backfillDays: z.number().int().min(0).max(3650),
    /** Null keeps raw events forever. */
    retentionDays: z.number().int().min(1).max(3650).nullable(),
    /** Null allows any origin; otherwise exact origins such as `https://shop.example`. */
    allowedOrigins: z.array(z.url().max(200)).max(100).nullable(),
    honorPrivacySignals: z.boolean(),
    /** Requests per minute; 0 turns the limit off. */
    ratePerKey: z.number().int().min(0).max(1_000_000),
    ratePerAddress: z.number().int().min(0).max(1_000_000),
  })
  .partial()
  .meta({ id: 'IngestSettings' });

export const resubmitSchema = z
  .object({
    items: z
      .array(
        z.object({
          id: z.number().int(),
          /** A corrected event; without it the stored payload is sent again as it was. */
          event: z.record(z.string(), z.unknown()).optional(),
        }),
      )
      .min(1)
      .max(500),
  })
  .meta({ id: 'Resubmit' });

export const rotateKeySchema = z
  .object({
    /** How long the keys in use keep working; default one day. */
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(90 * 86_400)
      .optional(),
    /** Registers a chosen key (development); otherwise one is generated and returned once. */
    writeKey: z.string().min(16).max(200).optional(),
  })
  .meta({ id: 'RotateWriteKey' });

export const adminTokenSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[\w.@-]+$/),
    /** Omitted or null: every site. */
    siteId: z.string().regex(SITE_ID).nullable().optional(),
    token: z.string().min(24).max(200).optional(),
  })
  .meta({ id: 'AdminTokenInput' });

const DEFAULT_GRACE_SECONDS = 86_400;

/** Key ids shown to admins: a prefix of the key's hash, never the key. */
const keyId = (hash: string) => hash.slice(0, 16);

function requireGlobal(admin: Admin): void {
  if (admin.siteId !== null) {
    throw new ApiError(403, 'forbidden', 'only an all-sites token may manage admin tokens');
  }
}

async function audited(
  c: AppContext,
  admin: Admin,
  change: D1PreparedStatement[],
  entry: { action: string; siteId: string | null; detail?: Record<string, unknown> },
): Promise<D1Result[]> {
  // Recorded only if the last change statement changed a row: a revoke of nothing is no change.
  const audit = auditStatement(c.env.DB, admin, { ...entry, at: nowMs(c.env) }, true);
  return c.env.DB.batch([...change, audit]);
}

export const ingestAdminRoutes = new Hono<{ Bindings: Env }>();

ingestAdminRoutes.get('/admin/sites/:siteId/rejected', async (c) => {
  const { siteId } = await siteAdmin(c);
  const limit = limitParam(c.req.query('limit'), 100, 1000);
  const disposition = c.req.query('disposition') ?? null;
  if (disposition !== null && disposition !== 'rejected' && disposition !== 'filtered') {
    throw new ApiError(400, 'invalid_disposition', 'disposition must be rejected or filtered');
  }
  const code = c.req.query('code') ?? null;
  // Pages: `before` is the `next` of the previous page, the id of its last row; the list goes on
  // from the rows filed before that one (key order: received time, then id).
  const before = c.req.query('before') ?? null;
  let after: { received_at: number; id: number } | null = null;
  if (before !== null) {
    if (!/^\d{1,16}$/.test(before)) {
      throw new ApiError(400, 'invalid_before', 'before must be the id of a listed row (next)');
    }
    after = await c.env.DB.prepare(
      `SELECT received_at, id FROM rejected_events WHERE ${rowsWithIds([Number(before)])}`,
    )
      .bind(siteId, JSON.stringify([Number(before)]))
      .first<{ received_at: number; id: number }>();
    if (!after) throw new ApiError(404, 'rejected_not_found', `no rejected event ${before}`);
  }
  const { results } = await c.env.DB.prepare(
    `SELECT id, received_at AS receivedAt, disposition, code, path, message, rule,
       message_id AS messageId, resubmitted_at AS resubmittedAt, raw FROM rejected_events
     WHERE site_id = ?1 AND (?2 IS NULL OR disposition = ?2) AND (?3 IS NULL OR code = ?3)
       AND (?5 IS NULL OR (received_at, id) < (?5, ?6))
     ORDER BY received_at DESC, id DESC LIMIT ?4`,
  )
    .bind(siteId, disposition, code, limit, after?.received_at ?? null, after?.id ?? null)
    .all<{ id: number }>();
  const { results: byCode } = await c.env.DB.prepare(
    `SELECT disposition, code, COUNT(*) AS count FROM rejected_events WHERE site_id = ?
     GROUP BY disposition, code ORDER BY disposition, code`,
  )
    .bind(siteId)
    .all();
  const next = results.length === limit ? (results.at(-1)?.id ?? null) : null;
  return c.json({ byCode, rejected: results, next });
});

ingestAdminRoutes.post('/admin/sites/:siteId/rejected/resubmit', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  const admin = await requireAdmin(c, siteId);
  const retention = await requireRetention(c.env.DB, siteId);
  const input = await parseJson(c.req.raw, resubmitSchema);

  const ids = input.items.map((item) => item.id);
  const { results: rows } = await c.env.DB.prepare(
    `SELECT id, raw FROM rejected_events WHERE ${rowsWithIds(ids)}`,
  )
    .bind(siteId, JSON.stringify(ids))
    .all<{ id: number; raw: string | null }>();
  const byId = new Map(rows.map((row) => [row.id, row.raw]));
  const batch = input.items.map((item) => {
    if (item.event) return item.event;
    const raw = byId.get(item.id);
    if (raw === undefined)
      throw new ApiError(404, 'rejected_not_found', `no rejected event ${item.id}`);
    try {
      return JSON.parse(raw ?? '') as unknown;
    } catch {
      throw new ApiError(
        400,
        'raw_not_resubmittable',
        `rejected event ${item.id} was stored truncated or without payload; send a corrected event`,
      );
    }
  });

  // Re-submitted by an admin: every event time within the retention is accepted (as on the
  // import path) and the traffic filters are skipped, since the admin has judged these events.
  const now = nowMs(c.env);
  const outcome = await ingestAndDeliver(c, {
    db: c.env.DB,
    siteId,
    body: { batch },
    impliedType: null,
    receivedAt: now,
    oldestAllowed: null,
    retainedFrom: retainedFrom(now, retention),
    requestUserAgent: null,
    requestCountry: null,
    traffic: null,
  });
  // Only the items this attempt did not refuse again count as re-submitted.
  const refusedAgain = new Set(outcome.body.rejected.map((r) => r.index));
  const taken = input.items.filter((_, index) => !refusedAgain.has(index)).map((item) => item.id);
  await audited(
    c,
    admin,
    [
      c.env.DB.prepare(
        `UPDATE rejected_events SET resubmitted_at = ?3 WHERE ${rowsWithIds(taken)}`,
      ).bind(siteId, JSON.stringify(taken), now),
    ],
    {
      action: 'rejected.resubmit',
      siteId,
      detail: { ids, accepted: outcome.body.accepted },
    },
  );
  return c.json(outcome.body, outcome.status);
});

ingestAdminRoutes.get('/admin/sites/:siteId/ingest-settings', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  await requireAdmin(c, siteId);
  const row = await c.env.DB.prepare(
    `SELECT backfill_days, retention_days, allowed_origins, honor_privacy_signals, rate_per_key,
       rate_per_address FROM sites WHERE id = ?`,
  )
    .bind(siteId)
    .first<{
      backfill_days: number;
      retention_days: number | null;
      allowed_origins: string | null;
      honor_privacy_signals: number;
      rate_per_key: number;
      rate_per_address: number;
    }>();
  if (!row) throw new ApiError(404, 'site_not_found', `no site ${siteId}`);
  return c.json({
    backfillDays: row.backfill_days,
    retentionDays: row.retention_days,
    allowedOrigins: row.allowed_origins ? (JSON.parse(row.allowed_origins) as string[]) : null,
    honorPrivacySignals: row.honor_privacy_signals === 1,
    ratePerKey: row.rate_per_key,
    ratePerAddress: row.rate_per_address,
  });
});

ingestAdminRoutes.patch('/admin/sites/:siteId/ingest-settings', async (c) => {
  const { siteId, admin } = await siteAdmin(c);
  const input = await parseJson(c.req.raw, ingestSettingsSchema);
  const origins = input.allowedOrigins?.map((origin) => new URL(origin).origin);

  const columns: Array<[string, unknown]> = [];
  if (input.backfillDays !== undefined) columns.push(['backfill_days', input.backfillDays]);
  if (input.retentionDays !== undefined) columns.push(['retention_days', input.retentionDays]);
  if (input.allowedOrigins !== undefined) {
    columns.push(['allowed_origins', origins ? JSON.stringify(origins) : null]);
  }
  if (input.honorPrivacySignals !== undefined) {
    columns.push(['honor_privacy_signals', input.honorPrivacySignals ? 1 : 0]);
  }
  if (input.ratePerKey !== undefined) columns.push(['rate_per_key', input.ratePerKey]);
  if (input.ratePerAddress !== undefined) columns.push(['rate_per_address', input.ratePerAddress]);
  if (columns.length === 0) throw new ApiError(400, 'invalid_field', 'no setting given');

  const set = columns.map(([name]) => `${name} = ?`).join(', ');
  await audited(
    c,
    admin,
    [
      c.env.DB.prepare(`UPDATE sites SET ${set} WHERE id = ?`).bind(
        ...columns.map(([, value]) => value),
        siteId,
      ),
    ],
    { action: 'site.ingest_settings', siteId, detail: input },
  );
  clearWriteKeyCache();
  return c.json({ updated: columns.map(([name]) => name) });
});

ingestAdminRoutes.get('/admin/sites/:siteId/write-keys', async (c) => {
  const { siteId } = await siteAdmin(c);
  const { results } = await c.env.DB.prepare(
    `SELECT key_hash, created_at, expires_at, revoked_at FROM write_keys WHERE site_id = ?
     ORDER BY created_at`,
  )
    .bind(siteId)
    .all<{
      key_hash: string;
      created_at: number;
      expires_at: number | null;
      revoked_at: number | null;
    }>();
  const now = nowMs(c.env);
  return c.json({
    keys: results.map((row) => ({
      id: keyId(row.key_hash),
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      revokedAt: row.revoked_at,
      active: row.revoked_at === null && (row.expires_at === null || now < row.expires_at),
    })),
  });
});

ingestAdminRoutes.post('/admin/sites/:siteId/write-keys/rotate', async (c) => {
  const { siteId, admin } = await siteAdmin(c);
  const input = await parseJson(c.req.raw, rotateKeySchema);
  const now = nowMs(c.env);
  const grace = (input.graceSeconds ?? DEFAULT_GRACE_SECONDS) * 1000;
  const writeKey = input.writeKey ?? randomToken('wk');
  const hash = await sha256Hex(writeKey);

  const taken = await c.env.DB.prepare('SELECT 1 FROM write_keys WHERE key_hash = ?')
    .bind(hash)
    .first();
  if (taken) throw new ApiError(409, 'write_key_taken', 'that write key is already registered');
  // Keys in use keep working until the grace period ends (an earlier end is kept).
  await audited(
    c,
    admin,
    [
      c.env.DB.prepare(
        `UPDATE write_keys SET expires_at = ? WHERE site_id = ? AND revoked_at IS NULL
           AND (expires_at IS NULL OR expires_at > ?)`,
      ).bind(now + grace, siteId, now + grace),
      c.env.DB.prepare(
        'INSERT INTO write_keys (key_hash, site_id, created_at, label) VALUES (?, ?, ?, ?)',
      ).bind(hash, siteId, now, keyId(hash)),
    ],
    { action: 'write_key.rotate', siteId, detail: { id: keyId(hash), graceSeconds: grace / 1000 } },
  );
  clearWriteKeyCache();
  return c.json(
    {
      id: keyId(hash),
      writeKey: input.writeKey ? undefined : writeKey,
      oldKeysExpireAt: now + grace,
    },
    201,
  );
});

ingestAdminRoutes.delete('/admin/sites/:siteId/write-keys/:keyId', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  const admin = await requireAdmin(c, siteId);
  const id = c.req.param('keyId');
  if (!/^[0-9a-f]{16}$/.test(id)) throw new ApiError(400, 'invalid_key_id', 'key ids are 16 hex');
  const [result] = await audited(
    c,
    admin,
    [
      c.env.DB.prepare(
        `UPDATE write_keys SET revoked_at = ?
         WHERE site_id = ? AND substr(key_hash, 1, 16) = ? AND revoked_at IS NULL`,
      ).bind(nowMs(c.env), siteId, id),
    ],
    { action: 'write_key.revoke', siteId, detail: { id } },
  );
  if (!result?.meta.changes) throw new ApiError(404, 'write_key_not_found', 'no such active key');
  clearWriteKeyCache();
  return c.json({ revoked: true });
});

ingestAdminRoutes.post('/admin/tokens', async (c) => {
  const admin = await requireAdmin(c);
  requireGlobal(admin);
  const input = await parseJson(c.req.raw, adminTokenSchema);
  const token = input.token ?? randomToken('adm');
  const exists = await c.env.DB.prepare(
    'SELECT 1 FROM admin_tokens WHERE name = ? AND revoked_at IS NULL',
  )
    .bind(input.name)
    .first();
  if (exists || input.name === 'root') {
    throw new ApiError(409, 'token_name_taken', `an active token is named ${input.name}`);
  }
  await audited(
    c,
    admin,
    [
      c.env.DB.prepare(
        'INSERT INTO admin_tokens (token_hash, name, site_id, created_at) VALUES (?, ?, ?, ?)',
      ).bind(await sha256Hex(token), input.name, input.siteId ?? null, nowMs(c.env)),
    ],
    { action: 'admin_token.create', siteId: input.siteId ?? null, detail: { name: input.name } },
  );
  return c.json({ name: input.name, token: input.token ? undefined : token }, 201);
});

ingestAdminRoutes.delete('/admin/tokens/:name', async (c) => {
  const admin = await requireAdmin(c);
  requireGlobal(admin);
  const name = c.req.param('name');
  const [result] = await audited(
    c,
    admin,
    [
      c.env.DB.prepare(
        'UPDATE admin_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL',
      ).bind(nowMs(c.env), name),
    ],
    { action: 'admin_token.revoke', siteId: null, detail: { name } },
  );
  if (!result?.meta.changes) throw new ApiError(404, 'token_not_found', `no active token ${name}`);
  return c.json({ revoked: true });
});

ingestAdminRoutes.get('/admin/audit', async (c) => {
  const admin = await requireAdmin(c);
  const siteId = admin.siteId ?? c.req.query('site') ?? null;
  const limit = limitParam(c.req.query('limit'), 100, 1000);
  const { results } = await c.env.DB.prepare(
    `SELECT id, at, actor, action, site_id AS siteId, detail FROM admin_audit
     WHERE (?1 IS NULL OR site_id = ?1) ORDER BY id DESC LIMIT ?2`,
  )
    .bind(siteId, limit)
    .all<{ detail: string | null }>();
  return c.json({
    entries: results.map((row) => ({
      ...row,
      detail: row.detail ? (JSON.parse(row.detail) as unknown) : null,
    })),
  });
});

ingestAdminRoutes.get('/admin/sites/:siteId/people/:id', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  const admin = await requireAdmin(c, siteId);
  const data = await exportPerson(c.env, siteId, c.req.param('id'));
  // Reading a person's data is recorded too: it is personal data leaving the system.
  await c.env.DB.batch([
    auditStatement(c.env.DB, admin, {
      action: 'person.export',
      siteId,
      at: nowMs(c.env),
      detail: { ids: data.anonymousIds.length + data.userIds.length },
    }),
  ]);
  return c.json(data);
});

ingestAdminRoutes.delete('/admin/sites/:siteId/people/:id', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  const admin = await requireAdmin(c, siteId);
  const deleted = await erasePerson(c.env, siteId, c.req.param('id'));
  // The audit keeps counts only: recording the erased ids would keep what was erased.
  await c.env.DB.batch([
    auditStatement(c.env.DB, admin, {
      action: 'person.erase',
      siteId,
      at: nowMs(c.env),
      detail: deleted,
    }),
  ]);
  return c.json({ deleted });
});
