/**
 * Admin bearer tokens: the bootstrap token from the environment (`ADMIN_TOKEN`, named "root"),
 * or a named token stored hashed in D1, scoped to one site or to all.
 */
import type { Context } from 'hono';
import type { Env } from '../env';
import { sha256Hex, timingSafeEqual } from '../lib/crypto';
import { ApiError } from '../lib/http-error';

export interface Admin {
  /** Who acts: recorded with every change. */
  name: string;
  /** Null when the token may act on every site. */
  siteId: string | null;
}

function bearer(c: Context<{ Bindings: Env }>): string | null {
  const header = c.req.header('Authorization') ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1] ?? null;
}

/**
 * True when the request carries a valid admin token that may act on `siteId` (for admin-only
 * extras on public routes: a token scoped to another site gets none).
 */
export async function isAdmin(c: Context<{ Bindings: Env }>, siteId: string): Promise<boolean> {
  if (!bearer(c)) return false;
  return requireAdmin(c, siteId).then(
    () => true,
    () => false,
  );
}

/** Resolves the request's admin token or throws 401. */
export async function requireAdmin(c: Context<{ Bindings: Env }>, siteId?: string): Promise<Admin> {
  const token = bearer(c);
  if (!token) throw new ApiError(401, 'unauthorized', 'an admin bearer token is required');

  let admin: Admin | null = null;
  if (c.env.ADMIN_TOKEN && timingSafeEqual(token, c.env.ADMIN_TOKEN)) {
    admin = { name: 'root', siteId: null };
  } else {
    const row = await c.env.DB.prepare(
      'SELECT name, site_id FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL',
    )
      .bind(await sha256Hex(token))
      .first<{ name: string; site_id: string | null }>();
    if (row) admin = { name: row.name, siteId: row.site_id };
  }
  if (!admin) throw new ApiError(401, 'unauthorized', 'the admin token is not valid');
  if (siteId !== undefined && admin.siteId !== null && admin.siteId !== siteId) {
    throw new ApiError(403, 'forbidden', 'this token may not act on that site');
  }
  return admin;
}

/**
 * The audit record of one admin change, as a statement to run in the same D1 batch as the change
 * itself, so that no change lands without its record. `detail` must hold no secret.
 */
export function auditStatement(
  db: D1Database,
  admin: Admin,
  entry: { action: string; siteId: string | null; detail?: Record<string, unknown>; at: number },
  /** Records only when the statement just before it in the batch changed a row. */
  ifChanged = false,
): D1PreparedStatement {
  // changes() reads the previous statement of the same batch: a revoke of nothing leaves no entry.
  const guard = ifChanged ? ' WHERE changes() > 0' : '';
  return db
    .prepare(
      `INSERT INTO admin_audit (at, actor, action, site_id, detail) SELECT ?, ?, ?, ?, ?${guard}`,
    )
    .bind(
      entry.at,
      admin.name,
      entry.action,
      entry.siteId,
      entry.detail ? JSON.stringify(entry.detail) : null,
    );
}
