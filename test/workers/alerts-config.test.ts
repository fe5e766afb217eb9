/**
 * The detector config through the admin API: layers store only the keys they were given and
 * merge at read time (defaults < site < goal), and every contradictory config is refused with a
 * stable code and a message that names the key.
 */
import { env } from 'cloudflare:test';
import { seedSite } from './helpers';
import { adminCall, H, history, runCron, T, writeVolumes } from './alerts-helpers';

const put = (path: string, body: unknown) => adminCall('PUT', path, body);

describe('config layers', () => {
  it("stores only a goal override's own keys; the site's keep applying under it", async () => {
    const site = await seedSite('cfg-layers', ['page', 'checkout']);
    // The site never judges a window under 10,000 expected events: nothing here is judged.
    const siteKeys = { minExpected: 10_000, dropRatio: 0.4, recoverRatio: 0.6 };
    expect((await put(`/admin/sites/${site.siteId}/alerts/config`, siteKeys)).status).toBe(200);

    const saved = await put(`/admin/sites/${site.siteId}/goals/goal/alerts/config`, {
      holdRatio: 0.7,
    });

    expect(saved.status).toBe(200);
    const row = await env.DB.prepare(
      "SELECT config FROM alert_configs WHERE site_id = ? AND goal_id = 'goal'",
    )
      .bind(site.siteId)
      .first<{ config: string }>();
    expect(JSON.parse(row?.config ?? 'null')).toEqual({ holdRatio: 0.7 });
    const goal = await adminCall('GET', `/admin/sites/${site.siteId}/goals/goal/alerts/config`);
    expect(goal.status).toBe(200);
    expect(goal.body.stored).toEqual({ holdRatio: 0.7 });
    expect(goal.body.site).toEqual(siteKeys);
    expect(goal.body.effective).toMatchObject({ ...siteKeys, holdRatio: 0.7, alpha: 0.001 });
    const whole = await adminCall('GET', `/admin/sites/${site.siteId}/alerts/config`);
    expect(whole.body.stored).toEqual(siteKeys);
    expect(whole.body.goals).toEqual([
      { goalId: 'goal', stored: { holdRatio: 0.7 }, effective: goal.body.effective },
    ]);

    // The checks run with the merged config: checkout stops 06:00–09:00, but 40 an hour is far
    // under the site's 10,000, so the goal's override must not bring the default 20 back.
    await writeVolumes(site.siteId, (event, hour) =>
      event === 'checkout' && hour >= T + 6 * H && hour < T + 9 * H ? 0 : 40,
    );
    await runCron(T + 7 * H + 15 * 60_000);
    expect(await history(site.siteId)).toEqual([]);
  });

  it("answers 404 for an unknown site's config and an unknown goal's override", async () => {
    await seedSite('cfg-404', ['page']);

    const site = await adminCall('GET', '/admin/sites/cfg-nosuch/alerts/config');
    const goalPut = await put('/admin/sites/cfg-404/goals/nosuch/alerts/config', { alpha: 0.01 });
    const goalGet = await adminCall('GET', '/admin/sites/cfg-404/goals/nosuch/alerts/config');

    expect([site.status, site.body.code]).toEqual([404, 'site_not_found']);
    expect([goalPut.status, goalPut.body.code]).toEqual([404, 'goal_not_found']);
    expect([goalGet.status, goalGet.body.code]).toEqual([404, 'goal_not_found']);
    const stored = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM alert_configs WHERE site_id = 'cfg-404'",
    ).first<{ n: number }>();
    expect(stored?.n).toBe(0);
  });
});

describe('config validation', () => {
  const rule = { id: 'r1', event: 'page' };
  const cases: Array<[string, unknown, string]> = [
    ['minWeeks over baselineWeeks', { minWeeks: 5, baselineWeeks: 4 }, 'minWeeks:'],
    ['baselineWeeks under the default minWeeks', { baselineWeeks: 1 }, 'minWeeks:'],
    ['minDays over fallbackDays', { minDays: 5, fallbackDays: 4 }, 'minDays:'],
    ['recovery ratio under the trigger', { dropRatio: 0.6, recoverRatio: 0.5 }, 'recoverRatio:'],
    [
      'an absolute rule recovering under its line',
      { rules: [{ ...rule, below: 50, recoverAt: 40 }] },
      'rules.0.recoverAt:',
    ],
    [
      'a relative rule recovering at a deeper drop than it fires',
      { rules: [{ ...rule, dropPct: 30, recoverPct: 40 }] },
      'rules.0.recoverPct:',
    ],
    [
      'two rules with one id',
      {
        rules: [
          { ...rule, below: 5 },
          { ...rule, dropPct: 50 },
        ],
      },
      'rules.1.id:',
    ],
    [
      'a rule both absolute and relative',
      { rules: [{ ...rule, below: 50, dropPct: 40 }] },
      'rules.0.dropPct:',
    ],
    ['a rule with neither level', { rules: [rule] }, 'rules.0.below:'],
    [
      'a maintenance window ending before it starts',
      { maintenance: [{ from: '2025-03-02T00:00:00Z', to: '2025-03-01T00:00:00Z' }] },
      'maintenance.0.to:',
    ],
    ['a javascript: report link', { reportLink: 'javascript:alert(1)' }, 'reportLink:'],
    [
      'an empty quiet window (start equals end)',
      { quietWindows: [{ start: '22:00', end: '22:00' }] },
      'quietWindows.0.end:',
    ],
    ['a misspelt key', { dropratio: 0.4 }, 'dropratio'],
  ];
  for (const [what, body, field] of cases) {
    it(`refuses ${what} with invalid_field naming ${field.replace(/:$/, '')}`, async () => {
      await seedSite('cfg-bad', ['page']);

      const res = await put('/admin/sites/cfg-bad/alerts/config', body);

      expect(res.status).toBe(400);
      expect(res.body.code).toBe('invalid_field');
      expect(res.body.message).toContain(field);
      const stored = await env.DB.prepare(
        "SELECT COUNT(*) AS n FROM alert_configs WHERE site_id = 'cfg-bad'",
      ).first<{ n: number }>();
      expect(stored?.n).toBe(0);
    });
  }

  it('refuses trafficDip in a goal override: a dip is one site-level incident', async () => {
    await seedSite('cfg-goal-dip', ['page']);

    const res = await put('/admin/sites/cfg-goal-dip/goals/goal/alerts/config', {
      trafficDip: 'warning',
    });

    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_field');
    expect(res.body.message).toContain('trafficDip: not a per-goal key');
  });

  it('refuses a site-wide key in a goal override, naming it', async () => {
    await seedSite('cfg-goal-keys', ['page']);

    const res = await put('/admin/sites/cfg-goal-keys/goals/goal/alerts/config', {
      alpha: 0.01,
      rules: [],
    });

    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_field');
    expect(res.body.message).toContain('rules');
  });

  it('refuses a goal override whose levels invert over the site config', async () => {
    await seedSite('cfg-goal-inv', ['page']);
    await put('/admin/sites/cfg-goal-inv/alerts/config', { dropRatio: 0.6, recoverRatio: 0.7 });

    const res = await put('/admin/sites/cfg-goal-inv/goals/goal/alerts/config', {
      recoverRatio: 0.55,
    });

    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'invalid_field' });
    expect(res.body.message).toBe(
      'goal goal: recoverRatio: must be above dropRatio (0.6): recovery apart from the trigger',
    );
  });

  it('refuses a site config that would invert an existing goal override', async () => {
    await seedSite('cfg-site-inv', ['page']);
    const ok = await put('/admin/sites/cfg-site-inv/goals/goal/alerts/config', {
      recoverRatio: 0.8,
    });
    expect(ok.status).toBe(200);

    const res = await put('/admin/sites/cfg-site-inv/alerts/config', {
      dropRatio: 0.85,
      recoverRatio: 0.95,
    });

    expect(res.status).toBe(400);
    expect(res.body.message).toContain('goal goal: recoverRatio');
  });
});
