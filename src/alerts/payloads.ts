/**
 * What each channel receives, pure: the signed JSON webhook body, a Slack incoming-webhook
 * message and a PagerDuty Events v2 event (trigger and resolve share one dedup key).
 */
import type { Severity } from './lifecycle';

/** One history row as the channels see it. */
export interface AlertNotice {
  deliveryId: string;
  site: string;
  incidentId: string;
  key: string;
  action: 'open' | 'repeat' | 'resolve';
  reason: string | null;
  kind: string;
  severity: Severity;
  step: string | null;
  goals: string[];
  at: number;
  windowStart: number;
  windowEnd: number;
  observed: number;
  expected: number;
  detail: Record<string, unknown>;
  reportUrl: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();
const round = (n: number) => (Math.abs(n) < 10 ? Math.round(n * 1000) / 1000 : Math.round(n));

const KIND_TEXT: Record<string, string> = {
  step_stopped: 'stopped receiving events (tracking break)',
  tracking_break: 'dropped while the rest of the site held (tracking break)',
  traffic_dip: 'dropped with the rest of the site (traffic dip)',
  site_silent: 'received no events at all where its baseline expects them (tracking removed?)',
  rule: 'crossed its alert rule',
  conversion_drop: 'conversion from the previous step dropped',
  property_missing: 'lost a property most of its events carry',
  property_type_changed: 'a property changed type',
  rejected_share: 'share of rejected events rose',
};

/** One line a person reads first: what, which step, observed against expected, since when. */
export function summarize(n: AlertNotice): string {
  const subject = n.step ? `Step "${n.step}"` : `Site ${n.site}`;
  const what =
    !n.step && n.kind === 'traffic_dip'
      ? 'traffic fell on every step at once (traffic dip)'
      : (KIND_TEXT[n.kind] ?? n.kind);
  const field = typeof n.detail.field === 'string' ? ` (${n.detail.field})` : '';
  const window = `${iso(n.windowStart)}–${iso(n.windowEnd)}`;
  const numbers = `observed ${round(n.observed)} vs expected ${round(n.expected)} in ${window}`;
  const prefix =
    n.action === 'resolve' ? 'RESOLVED: ' : n.action === 'repeat' ? 'STILL OPEN: ' : '';
  const renames = Array.isArray(n.detail.renameSuggestions) ? n.detail.renameSuggestions : [];
  const first = renames[0] as { event?: string } | undefined;
  const hint = first?.event ? `; renamed to "${first.event}"?` : '';
  const steps = Array.isArray(n.detail.steps)
    ? (n.detail.steps as Array<{ step?: unknown }>).map((s) => String(s.step))
    : [];
  const listed = !n.step && steps.length > 0 ? `; steps: ${steps.join(', ')}` : '';
  const event = n.detail.siteEvent as { kind?: unknown } | undefined;
  const part =
    event && typeof event === 'object'
      ? ` (part of a site-wide ${event.kind === 'site_silent' ? 'silence' : 'traffic dip'})`
      : '';
  return `${prefix}[${n.site}] ${subject} ${what}${field}${part}: ${numbers}${listed}${hint}`;
}

/** The JSON webhook body (signed by the sender; see `signatureHeader`). */
export function webhookBody(n: AlertNotice): string {
  return JSON.stringify({
    id: n.deliveryId,
    type: `alert.${n.action}`,
    site: n.site,
    summary: summarize(n),
    alert: {
      incidentId: n.incidentId,
      key: n.key,
      reason: n.reason,
      kind: n.kind,
      severity: n.severity,
      step: n.step,
      goals: n.goals,
      at: iso(n.at),
      window: { start: iso(n.windowStart), end: iso(n.windowEnd) },
      observed: n.observed,
      expected: n.expected,
      detail: n.detail,
    },
    reportUrl: n.reportUrl,
  });
}

/** A Slack-compatible incoming-webhook message. */
export function slackBody(n: AlertNotice): string {
  const icon =
    n.action === 'resolve'
      ? ':white_check_mark:'
      : n.severity === 'critical'
        ? ':rotating_light:'
        : n.severity === 'warning'
          ? ':warning:'
          : ':information_source:';
  const text = `${icon} ${summarize(n)}`;
  const link = n.reportUrl ? `\n<${n.reportUrl}|Open the report>` : '';
  return JSON.stringify({
    text,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `${text}${link}` } }],
  });
}

/** A PagerDuty Events v2 event: trigger on open and repeat, resolve on resolve; one dedup key. */
export function pagerDutyBody(n: AlertNotice, routingKey: string): string {
  const base = { routing_key: routingKey, dedup_key: `goalstep:${n.site}:${n.incidentId}` };
  if (n.action === 'resolve') return JSON.stringify({ ...base, event_action: 'resolve' });
  return JSON.stringify({
    ...base,
    event_action: 'trigger',
    payload: {
      summary: summarize(n).slice(0, 1024),
      source: `goalstep:${n.site}`,
      severity:
        n.severity === 'critical' ? 'critical' : n.severity === 'warning' ? 'warning' : 'info',
      timestamp: iso(n.at),
      component: n.step ?? undefined,
      class: n.kind,
      custom_details: {
        observed: n.observed,
        expected: n.expected,
        goals: n.goals,
        detail: n.detail,
      },
    },
    ...(n.reportUrl ? { links: [{ href: n.reportUrl, text: 'goalstep report' }] } : {}),
  });
}

const encoder = new TextEncoder();

/**
 * `Goalstep-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the receiver
 * recomputes it with the channel secret and rejects stale timestamps (replays).
 */
export async function signatureHeader(secret: string, body: string, atMs: number): Promise<string> {
  const t = Math.floor(atMs / 1000);
  const key = await crypto.subtle.importKey(
    'raw',
    encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(`${t}.${body}`));
  const hex = [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `t=${t},v1=${hex}`;
}

/** Delay before retry number `attempts` (1 = after the first failure): 1, 2, 4 … 60 minutes. */
export function backoffMs(attempts: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, attempts - 1), 3_600_000);
}

/** Attempts after which a delivery is given up (about a day of hourly retries after backoff). */
export const MAX_ATTEMPTS = 30;
