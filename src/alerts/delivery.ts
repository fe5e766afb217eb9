/**
 * The outbox sender: due deliveries are leased (so an overlapping run cannot send them too),
 * posted, and every attempt recorded; failures wait with backoff, and nothing is dropped until
 * `MAX_ATTEMPTS`.
 */
import { logger } from '../lib/logger';
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
const TIMEOUT_MS = 10_000;

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

/** Sends up to `limit` due deliveries; returns how many were delivered and failed. */
export async function deliverDue(
  db: D1Database,
  now: number,
  reportLink: ReportLink,
  limit = 50,
): Promise<{ delivered: number; failed: number }> {
  const { results } = await db
    .prepare(
      `SELECT o.id AS outbox_id, o.attempts, c.kind, c.url, c.secret, h.site_id, h.incident_id,
         h.key, h.action, h.reason, h.kind AS alert_kind, h.severity, h.step, h.goals, h.at,
         h.window_start, h.window_end, h.observed, h.expected, h.detail
       FROM alert_outbox o
         JOIN alert_channels c ON c.id = o.channel_id
         JOIN alert_history h ON h.id = o.history_id
       WHERE o.status = 'pending' AND o.next_attempt_at <= ?1
         AND (o.lease_until IS NULL OR o.lease_until <= ?1)
       ORDER BY o.id LIMIT ?2`,
    )
    .bind(now, limit)
    .all<DueRow>();

  let delivered = 0;
  let failed = 0;
  for (const row of results) {
    const lease = await db
      .prepare(
        `UPDATE alert_outbox SET lease_until = ?1 WHERE id = ?2 AND status = 'pending'
           AND (lease_until IS NULL OR lease_until <= ?3)`,
      )
      .bind(now + LEASE_MS, row.outbox_id, now)
      .run();
    if (lease.meta.changes === 0) continue;

    const goals = JSON.parse(row.goals) as string[];
    const notice: AlertNotice = {
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
    const { body, headers } = request(row, notice);
    const signed: Record<string, string> = { 'Content-Type': 'application/json', ...headers };
    if (row.kind === 'webhook' && row.secret) {
      signed['Goalstep-Signature'] = await signatureHeader(row.secret, body, now);
    }

    const started = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    try {
      const response = await fetch(row.url, {
        method: 'POST',
        headers: signed,
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      status = response.status;
      await response.body?.cancel();
      if (!response.ok) error = `HTTP ${response.status}`;
    } catch (cause) {
      error = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    }
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
    if (ok) delivered += 1;
    else {
      failed += 1;
      logger.warn('alerts.delivery_failed', {
        site: row.site_id,
        outbox: row.outbox_id,
        attempts,
        error,
      });
    }
  }
  return { delivered, failed };
}
