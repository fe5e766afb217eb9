/**
 * The outbox sender: due deliveries are leased (so an overlapping run cannot send them too),
 * signed at the moment they are sent, posted a few at a time with a timeout each, and every
 * attempt recorded; failures wait with backoff, and nothing is dropped until `MAX_ATTEMPTS`.
 * A delivery whose channel was disabled (or removed) after it was queued is skipped, not sent, and
 * so is one whose channel points at a private host while those are not allowed.
 */
import { logger } from '../lib/logger';
import { privateDestinationReason } from './destination';
import {
  backoffMs,
  MAX_ATTEMPTS,
  pagerDutyBody,
  signatureHeader,
  slackBody,
  webhookBody,
  type AlertNotice,
} from './payloads';

const LEASE_MS = 120_000;
/** Per request: a receiver that does not answer in time is a failed attempt, retried later. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/**
 * Requests in flight at once: one slow receiver holds one slot, not the whole run (a Worker
 * invocation has 6 simultaneous outbound connections; more would only queue in the runtime).
 */
export const DELIVERY_CONCURRENCY = 6;

interface DueRow {
  outbox_id: number;
  attempts: number;
  kind: string;
  url: string;
  secret: string | null;
  site_id: string;
  incident_id: string;
  key: string;
  action: AlertNotice['action'];
  reason: string | null;
  alert_kind: string;
  severity: AlertNotice['severity'];
  step: string | null;
  goals: string;
  at: number;
  window_start: number;
  window_end: number;
  observed: number;
  expected: number;
  detail: string;
}

function request(
  row: DueRow,
  notice: AlertNotice,
): { body: string; headers: Record<string, string> } {
  if (row.kind === 'slack') return { body: slackBody(notice), headers: {} };
  if (row.kind === 'pagerduty')
    return { body: pagerDutyBody(notice, row.secret ?? ''), headers: {} };
  return { body: webhookBody(notice), headers: { 'Goalstep-Delivery': notice.deliveryId } };
}

/** The report link of an alert: the site's configured report base plus the first goal. */
export type ReportLink = (siteId: string, goals: string[], windowStart: number) => string | null;

/** Runs `task` on every item with at most `limit` running at once. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Marks pending deliveries of disabled or removed channels `skipped` with the reason: a channel
 * switched off after an alert was queued for it is not sent to. Returns how many.
 */
async function skipClosedChannels(db: D1Database): Promise<number> {
  const result = await db
    .prepare(
      `UPDATE alert_outbox SET status = 'skipped', lease_until = NULL,
         last_error = CASE
           WHEN EXISTS (SELECT 1 FROM alert_channels c WHERE c.id = alert_outbox.channel_id)
           THEN 'skipped: channel disabled after this notice was queued'
           ELSE 'skipped: channel removed after this notice was queued' END
       WHERE status = 'pending' AND NOT EXISTS (SELECT 1 FROM alert_channels c
         WHERE c.id = alert_outbox.channel_id AND c.disabled_at IS NULL)`,
    )
    .run();
  return result.meta.changes;
}

function noticeOf(row: DueRow, reportLink: ReportLink): AlertNotice {
  const goals = JSON.parse(row.goals) as string[];
  return {
    deliveryId: `gs-delivery-${row.outbox_id}`,
    site: row.site_id,
    incidentId: row.incident_id,
    key: row.key,
    action: row.action,
    reason: row.reason,
    kind: row.alert_kind,
    severity: row.severity,
    step: row.step,
    goals,
    at: row.at,
    windowStart: row.window_start,
    windowEnd: row.window_end,
    observed: row.observed,
    expected: row.expected,
    detail: JSON.parse(row.detail) as Record<string, unknown>,
    reportUrl: reportLink(row.site_id, goals, row.window_start),
  };
}

/** One POST; the error text of a failure (HTTP status, timeout, connection), else null. */
async function post(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number | null; error: string | null }> {
  try {
    // A redirect is not followed: it could lead to a host the channel check would refuse.
    const response = await fetch(url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
    });
    await response.body?.cancel();
    return { status: response.status, error: response.ok ? null : `HTTP ${response.status}` };
  } catch (cause) {
    const error = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    return { status: null, error };
  }
}

/**
 * Sends up to `limit` due deliveries, `DELIVERY_CONCURRENCY` at a time. `now` is the run's time
 * (what is due, when to retry); `clock` is read as each request is signed, so a signature's
 * timestamp is the moment it leaves, however long the requests before it took. Unless
 * `allowPrivateHosts`, a channel URL is checked again as it is sent: one stored while private
 * hosts were allowed is skipped once they are not.
 */
export async function deliverDue(
  db: D1Database,
  now: number,
  reportLink: ReportLink,
  clock: () => number,
  allowPrivateHosts: boolean,
  limit = 50,
): Promise<{ delivered: number; failed: number; skipped: number }> {
  let skipped = await skipClosedChannels(db);
  const { results } = await db
    .prepare(
      `SELECT o.id AS outbox_id, o.attempts, c.kind, c.url, c.secret, h.site_id, h.incident_id,
         h.key, h.action, h.reason, h.kind AS alert_kind, h.severity, h.step, h.goals, h.at,
         h.window_start, h.window_end, h.observed, h.expected, h.detail
       FROM alert_outbox o
         JOIN alert_channels c ON c.id = o.channel_id AND c.disabled_at IS NULL
         JOIN alert_history h ON h.id = o.history_id
       WHERE o.status = 'pending' AND o.next_attempt_at <= ?1
         AND (o.lease_until IS NULL OR o.lease_until <= ?1)
       ORDER BY o.id LIMIT ?2`,
    )
    .bind(now, limit)
    .all<DueRow>();

  let delivered = 0;
  let failed = 0;
  await forEachLimited(results, DELIVERY_CONCURRENCY, async (row) => {
    const refused = allowPrivateHosts ? null : privateDestinationReason(row.url);
    if (refused) {
      const result = await db
        .prepare(
          `UPDATE alert_outbox SET status = 'skipped', lease_until = NULL, last_error = ?1
           WHERE id = ?2 AND status = 'pending'`,
        )
        .bind(`skipped: private destination (${refused})`, row.outbox_id)
        .run();
      skipped += result.meta.changes;
      logger.warn('alerts.delivery_refused', {
        site: row.site_id,
        outbox: row.outbox_id,
        reason: 'private_destination',
      });
      return;
    }
    // The channel is checked again as the row is leased: disabled since the read, not sent.
    const lease = await db
      .prepare(
        `UPDATE alert_outbox SET lease_until = ?1 WHERE id = ?2 AND status = 'pending'
           AND (lease_until IS NULL OR lease_until <= ?3)
           AND EXISTS (SELECT 1 FROM alert_channels c
             WHERE c.id = alert_outbox.channel_id AND c.disabled_at IS NULL)`,
      )
      .bind(now + LEASE_MS, row.outbox_id, now)
      .run();
    if (lease.meta.changes === 0) return;

    const { body, headers } = request(row, noticeOf(row, reportLink));
    const signed: Record<string, string> = { 'Content-Type': 'application/json', ...headers };
    if (row.kind === 'webhook' && row.secret) {
      signed['Goalstep-Signature'] = await signatureHeader(row.secret, body, clock());
    }
    const started = Date.now();
    const { status, error } = await post(row.url, body, signed);
    const durationMs = Date.now() - started;

    const attempts = row.attempts + 1;
    const ok = error === null;
    const nextStatus = ok ? 'delivered' : attempts >= MAX_ATTEMPTS ? 'dead' : 'pending';
    await db.batch([
      db
        .prepare(
          `INSERT INTO alert_attempts (outbox_id, at, ok, status_code, error, duration_ms)
           VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .bind(row.outbox_id, now, ok ? 1 : 0, status, error, durationMs),
      db
        .prepare(
          `UPDATE alert_outbox SET status = ?1, attempts = ?2, next_attempt_at = ?3,
             lease_until = NULL, delivered_at = ?4, last_error = ?5 WHERE id = ?6`,
        )
        .bind(
          nextStatus,
          attempts,
          ok ? now : now + backoffMs(attempts),
          ok ? now : null,
          error,
          row.outbox_id,
        ),
    ]);
    if (ok) {
      delivered += 1;
      return;
    }
    failed += 1;
    logger.warn('alerts.delivery_failed', {
      site: row.site_id,
      outbox: row.outbox_id,
      attempts,
      error,
    });
  });
  if (skipped > 0) logger.info('alerts.delivery_skipped', { skipped });
  return { delivered, failed, skipped };
}
