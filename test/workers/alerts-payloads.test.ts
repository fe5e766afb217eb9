/** Channel payloads and the webhook signature, recomputed here as a receiver would. */
import { addToSummaries, type CheckSummary } from '../../src/alerts/check-summary';
import type { Evaluation } from '../../src/alerts/evaluate';
import {
  backoffMs,
  pagerDutyBody,
  signatureHeader,
  slackBody,
  summarize,
  webhookBody,
  type AlertNotice,
} from '../../src/alerts/payloads';

const notice: AlertNotice = {
  deliveryId: 'gs-delivery-7',
  site: 'shop',
  incidentId: 'inc-1',
  key: 'volume:checkout_started',
  action: 'open',
  reason: 'new',
  kind: 'step_stopped',
  severity: 'critical',
  step: 'checkout_started',
  goals: ['checkout'],
  at: Date.parse('2025-03-03T15:15:00Z'),
  windowStart: Date.parse('2025-03-03T14:00:00Z'),
  windowEnd: Date.parse('2025-03-03T15:00:00Z'),
  observed: 0,
  expected: 120,
  detail: { renameSuggestions: [{ event: 'checkoutStarted' }] },
  reportUrl: 'https://example.test/r/sh_x/checkout?from=2025-03-03&to=2025-03-04',
};

describe('alert payloads', () => {
  it('signs "t.body" with HMAC-SHA256 the way a receiver recomputes it', async () => {
    const body = webhookBody(notice);
    const header = await signatureHeader('whsec_test', body, Date.parse('2025-03-03T15:15:30Z'));
    const t = Math.floor(Date.parse('2025-03-03T15:15:30Z') / 1000);
    const key = await crypto.subtle.importKey(
      'raw',
      new TextEncoder().encode('whsec_test'),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['verify'],
    );
    const [, hex] = header.split(',v1=');
    const mac = new Uint8Array((hex ?? '').match(/../g)?.map((b) => parseInt(b, 16)) ?? []);
    const data = new TextEncoder().encode(`${t}.${body}`);
    expect(await crypto.subtle.verify('HMAC', key, mac, data)).toBe(true);
    expect(header.startsWith(`t=${t},v1=`)).toBe(true);
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
  });

  it('says which step, since when, compared with what, and the suspected rename', () => {
    expect(summarize(notice)).toBe(
      '[shop] Step "checkout_started" stopped receiving events (tracking break): observed 0 vs ' +
        'expected 120 in 2025-03-03T14:00:00.000Z–2025-03-03T15:00:00.000Z; renamed to ' +
        '"checkoutStarted"?',
    );
    const body = JSON.parse(webhookBody(notice)) as { type: string; id: string };
    expect(body).toMatchObject({ type: 'alert.open', id: 'gs-delivery-7' });
  });

  it('triggers and resolves PagerDuty with one dedup key, and marks Slack resolves', () => {
    const trigger = JSON.parse(pagerDutyBody(notice, 'rk')) as Record<string, unknown>;
    const resolved = { ...notice, action: 'resolve' as const };
    const resolve = JSON.parse(pagerDutyBody(resolved, 'rk')) as Record<string, unknown>;
    expect(trigger).toMatchObject({
      routing_key: 'rk',
      event_action: 'trigger',
      dedup_key: 'goalstep:shop:inc-1',
      payload: { severity: 'critical', source: 'goalstep:shop' },
    });
    expect(resolve).toEqual({
      routing_key: 'rk',
      event_action: 'resolve',
      dedup_key: 'goalstep:shop:inc-1',
    });
    const slack = JSON.parse(slackBody(resolved)) as { text: string };
    expect(slack.text.startsWith(':white_check_mark: RESOLVED: [shop]')).toBe(true);
  });

  it('backs off 1, 2, 4 … minutes up to an hour', () => {
    expect([1, 2, 3, 7, 8, 30].map((n) => backoffMs(n) / 60_000)).toEqual([1, 2, 4, 60, 60, 60]);
  });
});

describe('check summaries', () => {
  it('counts verdicts, keeps the smallest p-value and the largest judged magnitude', () => {
    const run = (verdict: Evaluation['verdict'], magnitude: number, pValue: number | null) =>
      ({
        key: 'volume:x',
        kind: 'tracking_break',
        severity: 'critical',
        verdict,
        step: 'x',
        goals: ['g'],
        observed: 100 * (1 - magnitude),
        expected: 100,
        magnitude,
        windowStart: 0,
        windowEnd: 3_600_000,
        detail: { pValue },
      }) satisfies Evaluation;
    const summaries = new Map<string, CheckSummary>();
    addToSummaries(summaries, [run('clear', 0.1, 0.3)]);
    addToSummaries(summaries, [run('holding', 0.4, 0.01)]);
    addToSummaries(summaries, [run('unknown', 0.9, null)]);
    expect(summaries.get('volume:x')).toMatchObject({
      runs: 3,
      verdicts: { clear: 1, holding: 1, unknown: 1, firing: 0 },
      minPValue: 0.01,
      closest: { observed: 60, expected: 100, magnitude: 0.4, windowHours: 1 },
    });
  });
});

describe('site-wide notices and Slack icons', () => {
  const slackText = (n: AlertNotice) => (JSON.parse(slackBody(n)) as { text: string }).text;

  it('gives each severity its own Slack icon: info is not a warning', () => {
    expect(slackText({ ...notice, severity: 'info' })).toMatch(/^:information_source: /);
    expect(slackText({ ...notice, severity: 'warning' })).toMatch(/^:warning: /);
    expect(slackText({ ...notice, severity: 'critical' })).toMatch(/^:rotating_light: /);
    expect(slackText({ ...notice, action: 'resolve' })).toMatch(/^:white_check_mark: /);
  });

  it('names the steps of a site-level dip and marks a rule as part of a silence', () => {
    const dip = summarize({
      ...notice,
      key: 'site:traffic',
      kind: 'traffic_dip',
      severity: 'info',
      step: null,
      detail: { steps: [{ step: 'page' }, { step: 'checkout' }] },
    });
    const rule = summarize({
      ...notice,
      key: 'rule:floor',
      kind: 'rule',
      detail: { siteEvent: { key: 'site:traffic', kind: 'site_silent' } },
    });

    expect(dip).toContain('Site shop traffic fell on every step at once (traffic dip)');
    expect(dip).toContain('; steps: page, checkout');
    expect(rule).toContain('crossed its alert rule (part of a site-wide silence)');
  });
});
