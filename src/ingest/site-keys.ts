/** Resolves write keys to sites, with a short per-isolate cache off the beacon's D1 budget. */
import { sha256Hex } from '../lib/crypto';

export interface SiteAccess {
  siteId: string;
  backfillDays: number;
}

/** A key's answer (including "unknown") is reused for this long within one isolate. */
const CACHE_MS = 30_000;
const cache = new Map<string, { at: number; site: SiteAccess | null }>();

/** The site a write key writes to, or null when the key is unknown or revoked. */
export async function siteForWriteKey(
  db: D1Database,
  writeKey: string,
  now: number,
): Promise<SiteAccess | null> {
  const hash = await sha256Hex(writeKey);
  const hit = cache.get(hash);
  if (hit && now - hit.at < CACHE_MS) return hit.site;

  const row = await db
    .prepare(
      `SELECT s.id, s.backfill_days FROM write_keys k JOIN sites s ON s.id = k.site_id
       WHERE k.key_hash = ? AND k.revoked_at IS NULL`,
    )
    .bind(hash)
    .first<{ id: string; backfill_days: number }>();
  const site = row ? { siteId: row.id, backfillDays: row.backfill_days } : null;
  if (cache.size > 10_000) cache.clear();
  cache.set(hash, { at: now, site });
  return site;
}

/** Forgets cached answers, so a revoked or new key takes effect at once in this isolate. */
export function clearWriteKeyCache(): void {
  cache.clear();
}
