/**
 * Named alert scenarios through the real shell: events imported through the Worker, the real
 * scheduled handler, real local D1. Thresholds are lowered per site (documented config keys) so
 * that a day of history at 12 events an hour is enough to judge.
 */
import {
  createExecutionContext,
  createScheduledController,
  env,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import worker from '../../src/index';
import { ADMIN, importBatch, seedSite, settle, type TestSite } from './helpers';

const H = 3_600_000;
const T = Date.parse('2025-03-03T00:00:00Z');
const BASE = 'https://goalstep.test';
const SMALL = {
  minExpected: 10,
  minDays: 1,
  fallbackDays: 1,
  fieldMinSample: 10,
  rejectedMinSample: 30,
};

async function runCron(at: number): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(
    createScheduledController({ scheduledTime: at, cron: '*/15 * * * *' }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
}

async function admin(method: string, path: string, body: unknown) {
  const res = await SELF.fetch(`${BASE}${path}`, {
    method,
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.ok).toBe(true);
}

/**
 * 24 events an hour (12 per step when alternating) from T−24h to T+16h, shaped by
 * `make(hour, i)` (null = none).
 */
async function importHours(
  site: TestSite,
  make: (hour: number, i: number) => Record<string, unknown> | null,
) {
  const batch: unknown[] = [];
  for (let hour = T - 24 * H; hour < T + 16 * H; hour += H) {
    for (let i = 0; i < 24; i += 1) {
      const event = make(hour, i);
      if (event)
        batch.push({
          messageId: `${site.siteId}-${hour}-${i}-${batch.length}`,
          timestamp: new Date(hour + i * 145_000).toISOString(),
          ...event,
        });
    }
  }
  for (let i = 0; i < batch.length; i += 400) {
    expect((await importBatch(site, batch.slice(i, i + 400))).status).toBe(200);
  }
  await settle(site);
}

interface HistoryRow {
  action: string;
  kind: string;
  key: string;
  step: string | null;
  detail: Record<string, unknown>;
}

async function history(siteId: string): Promise<HistoryRow[]> {
  const res = await SELF.fetch(`${BASE}/admin/sites/${siteId}/alerts/history`, { headers: ADMIN });
  return ((await res.json()) as { history: HistoryRow[] }).history.reverse();
}

describe('alert scenarios through the real shell', () => {
  it('C30: a step renamed at 14:00 is 0 at the 15:15 run; the new name is suggested', async () => {
    const site = await seedSite('c30', ['page', 'Signup Completed']);
    await admin('PUT', '/admin/sites/c30/alerts/config', SMALL);
    await importHours(site, (hour, i) =>
      i % 2 === 0
        ? { type: 'track', event: 'page', anonymousId: `a${i}` }
        : {
            type: 'track',
            event: hour >= T + 14 * H ? 'signup_completed' : 'Signup Completed',
            anonymousId: `a${i}`,
          },
    );

    // 15:05: 14:00–15:00 is still in its 15-minute grace period; 13:00–14:00 was normal.
    await runCron(T + 15 * H + 5 * 60_000);
    expect(await history('c30')).toEqual([]);

    await runCron(T + 15 * H + 15 * 60_000);
    const rows = await history('c30');
    expect(rows.map((r) => [r.action, r.kind, r.key])).toEqual([
      ['open', 'step_stopped', 'volume:Signup Completed'],
    ]);
    const suggestions = rows[0]?.detail.renameSuggestions as Array<{
      event: string;
      sameNormalizedName: boolean;
    }>;
    expect(suggestions[0]).toMatchObject({ event: 'signup_completed', sameNormalizedName: true });
  });

  // utm_source lands in context.campaign.source; the buy step filters on amount > 0.
  it('schema drift: utm_source leaves the events, a filtered amount turns string', async () => {
    const site = await seedSite('drift', ['view', 'buy']);
    await admin('PUT', '/admin/sites/drift/goals/goal', {
      name: 'Test goal',
      steps: [
        { event: 'view' },
        { event: 'buy', where: [{ property: 'amount', op: 'gt', value: 0 }] },
      ],
    });
    await admin('PUT', '/admin/sites/drift/alerts/config', SMALL);
    await importHours(site, (hour, i) => {
      const after = hour >= T + 14 * H;
      return i % 2 === 0
        ? {
            type: 'track',
            event: 'view',
            anonymousId: `d${i}`,
            context: after ? {} : { campaign: { source: 'news' } },
          }
        : {
            type: 'track',
            event: 'buy',
            anonymousId: `d${i}`,
            properties: { amount: after ? '12.50' : 12.5 },
          };
    });

    await runCron(T + 15 * H + 15 * 60_000);
    const rows = await history('drift');
    expect(rows.map((r) => [r.action, r.kind, r.key]).sort()).toEqual([
      ['open', 'property_missing', 'field:view:context.campaign.source:missing'],
      ['open', 'property_type_changed', 'field:buy:properties.amount:type'],
    ]);
    expect(rows.find((r) => r.kind === 'property_type_changed')?.detail).toMatchObject({
      baseType: 'number',
      newType: 'text',
    });
  });

  it('the share of rejected events rises when beacons arrive without a browser id', async () => {
    const site = await seedSite('rejects', ['page']);
    await admin('PUT', '/admin/sites/rejects/alerts/config', SMALL);
    await importHours(site, (hour, i) =>
      hour >= T + 14 * H && i % 2 === 1
        ? { type: 'track', event: 'page' }
        : { type: 'track', event: 'page', anonymousId: `r${i}` },
    );

    await runCron(T + 15 * H + 15 * 60_000);
    const rows = await history('rejects');
    // Half the events of 14:00–15:00 are rejected; the window grows to 13:00–15:00 to reach 30
    // events: 12 of 48. The 12 kept pages of 24 expected are not a significant volume drop.
    const rejected = rows.filter((r) => r.kind === 'rejected_share');
    expect(rejected.map((r) => r.action)).toEqual(['open']);
    expect(rejected[0]?.detail).toMatchObject({ current: { rejected: 12, total: 48 } });
  });
});
