/** Resolves write keys to sites, with a short per-isolate cache off the beacon's D1 budget. */
import { sha256Hex } from '../lib/crypto';
import type { Retention } from './retention';

/** The site a write key opens, with the ingest settings the beacon path needs. */
export interface SiteAccess {
  siteId: string;
  backfillDays: number;
  /** Days of events the site keeps and how far a purge has deleted (`retainedFrom`). */
  retention: Retention;
  /** Null allows any origin. */
  allowedOrigins: string[] | null;
  honorPrivacySignals: boolean;
  /** Requests per minute; 0 turns a limit off. */
  ratePerKey: number;
  ratePerAddress: number;
  /** When a rotated-out key stops working, or null. */
  keyExpiresAt: number | null;
}

interface SiteRow {
  id: string;
  backfill_days: number;
  retention_days: number | null;
  purged_before: number | null;
  allowed_origins: string | null;
  honor_privacy_signals: number;
  rate_per_key: number;
  rate_per_address: number;
  expires_at: number | null;
}

function parseOrigins(text: string | null): string[] | null {
  if (!text) return null;
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.filter((o): o is string => typeof o === 'string') : null;
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
  if (hit && now - hit.at < CACHE_MS) return usable(hit.site, now);

  const row = await db
    .prepare(
      `SELECT s.id, s.backfill_days, s.retention_days, s.purged_before, s.allowed_origins,
         s.honor_privacy_signals, s.rate_per_key,
         s.rate_per_address, k.expires_at
       FROM write_keys k JOIN sites s ON s.id = k.site_id
       WHERE k.key_hash = ? AND k.revoked_at IS NULL`,
    )
    .bind(hash)
    .first<SiteRow>();
  const site: SiteAccess | null = row
    ? {
        siteId: row.id,
        backfillDays: row.backfill_days,
        retention: { days: row.retention_days, purgedBefore: row.purged_before },
        allowedOrigins: parseOrigins(row.allowed_origins),
        honorPrivacySignals: row.honor_privacy_signals === 1,
        ratePerKey: row.rate_per_key,
        ratePerAddress: row.rate_per_address,
        keyExpiresAt: row.expires_at,
      }
    : null;
  if (cache.size > 10_000) cache.clear();
  cache.set(hash, { at: now, site });
  return usable(site, now);
}

/** A rotated-out key works until its grace period ends, cached or not. */
function usable(site: SiteAccess | null, now: number): SiteAccess | null {
  return site && (site.keyExpiresAt === null || now < site.keyExpiresAt) ? site : null;
}

/** Forgets cached answers, so a revoked or new key takes effect at once in this isolate. */
export function clearWriteKeyCache(): void {
  cache.clear();
}
