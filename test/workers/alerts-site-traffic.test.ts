/**
 * Site-wide traffic through the real scheduled handler and local D1: a dip is one site-level
 * incident listing its steps, a whole-site stop is one critical `site_silent` incident, a dip
 * that deepens into silence stays one incident, and rules during them say they are part of it.
 */
import { env, SELF } from 'cloudflare:test';
import { ADMIN, seedSite } from './helpers';
import { adminCall, H, history, runCron, T, writeVolumes, type HistoryRow } from './alerts-helpers';

const BASE = 'https://goalstep.test';
const NORMAL: Record<string, number> = { page: 100, checkout: 40, other: 300 };
type Mode = 'dip' | 'break' | 'silent';
/**
 * Per hour after T: 'dip' = every event at 30 %, 'break' = only checkout at 30 %, 'silent' =
 * nothing at all.
 */
const shape = (plan: Record<number, Mode>) => (event: string, hour: number) => {
  const mode = plan[(hour - T) / H];
  if (mode === 'silent') return 0;
  const low = mode === 'dip' || (mode === 'break' && event === 'checkout');
  return low ? (NORMAL[event] as number) * 0.3 : (NORMAL[event] as number);
};
const rowsOf = (rows: HistoryRow[]) => rows.map((r) => [r.key, r.action, r.kind, r.severity]);
const stepsOf = (row: HistoryRow | undefined) =>
  (row?.detail.steps as Array<{ step: string }>).map((s) => s.step);

async function channel(siteId: string, minSeverity: string) {
  const res = await SELF.fetch(`${BASE}/admin/sites/${siteId}/alerts/channels`, {
    method: 'POST',
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    // Nothing listens on port 9 of loopback: deliveries stay queued, which is all we look at.
    body: JSON.stringify({ kind: 'webhook', name: 'x', url: 'http://127.0.0.1:9/', minSeverity }),
  });
  expect(res.status).toBe(201);
}

/** Runs the 07:15, 08:15 and 09:15 slots: they judge 06:00, 07:00 and 08:00. */
async function runMorning() {
  for (const hour of [7, 8, 9]) await runCron(T + hour * H + 15 * 60_000);
}

describe('site-wide traffic', () => {
  it('reports a dip of every step as one info incident listing the steps', async () => {
    const site = await seedSite('site-dip', ['page', 'checkout']);
    await writeVolumes(site.siteId, shape({ 6: 'dip' }));

    await runMorning();

    const rows = await history(site.siteId);
    expect(rowsOf(rows)).toEqual([
      ['site:traffic', 'open', 'traffic_dip', 'info'],
      ['site:traffic', 'resolve', 'traffic_dip', 'info'],
    ]);
    expect(stepsOf(rows[0])).toEqual(['page', 'checkout']);
    // The whole site: 30 + 12 + 90 of 100 + 40 + 300 in 06:00–07:00.
    expect(rows[0]).toMatchObject({ observed: 132, expected: 440 });
  });

  it('reports the whole site stopping as one critical site_silent incident', async () => {
    const site = await seedSite('site-silent', ['page', 'checkout']);
    await writeVolumes(site.siteId, shape({ 6: 'silent' }));

    await runMorning();

    const rows = await history(site.siteId);
    expect(rowsOf(rows)).toEqual([
      ['site:traffic', 'open', 'site_silent', 'critical'],
      ['site:traffic', 'resolve', 'site_silent', 'critical'],
    ]);
    expect(stepsOf(rows[0])).toEqual(['page', 'checkout']);
    expect(rows[0]).toMatchObject({ observed: 0, expected: 440 });
  });

  it('keeps a dip that deepens into silence one incident, repeated as critical', async () => {
    const site = await seedSite('site-deepen', ['page', 'checkout']);
    await writeVolumes(site.siteId, shape({ 6: 'dip', 7: 'silent' }));
    await channel(site.siteId, 'critical');

    await runMorning();

    const rows = await history(site.siteId);
    expect(rows.map((r) => [r.action, r.reason, r.kind, r.severity])).toEqual([
      ['open', 'new', 'traffic_dip', 'info'],
      ['repeat', 'changed', 'site_silent', 'critical'],
      ['resolve', 'recovered', 'traffic_dip', 'critical'],
    ]);
    expect(new Set(rows.map((r) => r.incidentId)).size).toBe(1);
    expect(rows[2]?.detail.lastKind).toBe('site_silent');
    // The critical-only channel hears of the silence and of its end, not of the info dip.
    const { results } = await env.DB.prepare(
      `SELECT h.action FROM alert_outbox o JOIN alert_history h ON h.id = o.history_id
       WHERE o.site_id = ? ORDER BY h.id`,
    )
      .bind(site.siteId)
      .all<{ action: string }>();
    expect(results.map((r) => r.action)).toEqual(['repeat', 'resolve']);
  });

  it('tells a dip apart from the break that follows it: two incidents, each its own', async () => {
    const site = await seedSite('site-dip-break', ['page', 'checkout']);
    await writeVolumes(site.siteId, shape({ 6: 'dip', 7: 'break' }));

    await runMorning();

    expect(rowsOf(await history(site.siteId))).toEqual([
      ['site:traffic', 'open', 'traffic_dip', 'info'],
      ['volume:checkout', 'open', 'tracking_break', 'critical'],
      ['site:traffic', 'resolve', 'traffic_dip', 'info'],
      ['volume:checkout', 'resolve', 'tracking_break', 'critical'],
    ]);
  });

  it('keeps a break open without a notice while a dip follows it, and resolves both', async () => {
    const site = await seedSite('site-break-dip', ['page', 'checkout']);
    await writeVolumes(site.siteId, shape({ 6: 'break', 7: 'dip' }));
    await channel(site.siteId, 'critical');

    await runMorning();

    expect(rowsOf(await history(site.siteId))).toEqual([
      ['volume:checkout', 'open', 'tracking_break', 'critical'],
      ['site:traffic', 'open', 'traffic_dip', 'info'],
      ['volume:checkout', 'resolve', 'tracking_break', 'critical'],
      ['site:traffic', 'resolve', 'traffic_dip', 'info'],
    ]);
    const { results } = await env.DB.prepare(
      `SELECT h.key, h.action FROM alert_outbox o JOIN alert_history h ON h.id = o.history_id
       WHERE o.site_id = ? ORDER BY h.id`,
    )
      .bind(site.siteId)
      .all<{ key: string; action: string }>();
    expect(results.map((r) => [r.key, r.action])).toEqual([
      ['volume:checkout', 'open'],
      ['volume:checkout', 'resolve'],
    ]);
  });

  it('marks a rule firing during a dip as part of it, at no higher severity', async () => {
    const site = await seedSite('site-dip-rule', ['page', 'checkout']);
    await writeVolumes(site.siteId, shape({ 6: 'dip', 7: 'silent' }));
    const config = await adminCall('PUT', `/admin/sites/${site.siteId}/alerts/config`, {
      rules: [{ id: 'floor', event: 'checkout', below: 20 }],
    });
    expect(config.status).toBe(200);

    await runCron(T + 7 * H + 15 * 60_000);
    await runCron(T + 8 * H + 15 * 60_000);

    const rule = (await history(site.siteId)).filter((r) => r.key === 'rule:floor');
    expect(rule.map((r) => [r.action, r.severity, r.detail.siteEvent])).toEqual([
      // 12 checkouts in the dip's hour, under 20; the dip is info, so the rule is too.
      ['open', 'info', { key: 'site:traffic', kind: 'traffic_dip' }],
      // During the silence (critical) the rule keeps its own warning level.
      ['repeat', 'warning', { key: 'site:traffic', kind: 'site_silent' }],
    ]);
  });
});
