/**
 * The alert lifecycle in real local D1 through the real scheduled handler: an alert opens once,
 * stays quiet while nothing changes, resolves with a notice; a cron that fires twice or overlaps
 * itself records nothing twice; a receiver that is down gets recorded attempts and a backoff.
 */
import { env, SELF } from 'cloudflare:test';
import { ADMIN, seedSite } from './helpers';
import { H, history, runCron, T, writeVolumes } from './alerts-helpers';

const BASE = 'https://goalstep.test';

describe('alert lifecycle in D1', () => {
  it('opens once on a stopped step, stays quiet, resolves; a double cron adds none', async () => {
    const site = await seedSite('alerts-life', ['page', 'checkout']);
    // Checkout stops from 06:00 to 09:00 on 10 March; everything else holds.
    await writeVolumes(site.siteId, (event, hour) => {
      if (event === 'page') return 100;
      if (event === 'other') return 300;
      return hour >= T + 6 * H && hour < T + 9 * H ? 0 : 40;
    });
    const channel = await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/alerts/channels`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      // Nothing listens on port 9 of loopback: every attempt fails and is retried later.
      body: JSON.stringify({ kind: 'webhook', name: 'down', url: 'http://127.0.0.1:9/hook' }),
    });
    expect(channel.status).toBe(201);

    await runCron(T + 6 * H + 15 * 60_000); // judges 05:00–06:00: normal
    expect(await history(site.siteId)).toEqual([]);

    // 07:15 judges 06:00–07:00 (0 of 40 expected): fired twice at once and once more.
    await Promise.all([runCron(T + 7 * H + 15 * 60_000), runCron(T + 7 * H + 15 * 60_000)]);
    await runCron(T + 7 * H + 15 * 60_000);
    await runCron(T + 7 * H + 30 * 60_000);
    await runCron(T + 8 * H + 15 * 60_000);
    let rows = await history(site.siteId);
    expect(rows.map((r) => [r.action, r.kind, r.key])).toEqual([
      ['open', 'step_stopped', 'volume:checkout'],
    ]);
    expect(rows[0]).toMatchObject({ observed: 0, expected: 40 });

    // 10:15 judges 09:00–10:00: back to 40, resolved once.
    await runCron(T + 10 * H + 15 * 60_000);
    await runCron(T + 10 * H + 15 * 60_000);
    await runCron(T + 11 * H + 15 * 60_000);
    rows = await history(site.siteId);
    expect(rows.map((r) => r.action)).toEqual(['open', 'resolve']);

    const deliveries = await env.DB.prepare(
      `SELECT o.status, o.attempts, o.next_attempt_at, COUNT(a.id) AS tries, SUM(a.ok) AS ok
       FROM alert_outbox o LEFT JOIN alert_attempts a ON a.outbox_id = o.id
       WHERE o.site_id = ? GROUP BY o.id ORDER BY o.id`,
    )
      .bind(site.siteId)
      .all<{ status: string; attempts: number; tries: number; ok: number }>();
    expect(deliveries.results).toHaveLength(2);
    for (const d of deliveries.results) {
      expect(d.status).toBe('pending');
      expect(d.ok).toBe(0);
      expect(d.tries).toBe(d.attempts);
      expect(d.attempts).toBeGreaterThanOrEqual(1);
    }
  });

  it('rejects a non-http(s) channel URL and an unknown kind with a stable code', async () => {
    await seedSite('alerts-bad', ['a']);
    const post = (body: unknown) =>
      SELF.fetch(`${BASE}/admin/sites/alerts-bad/alerts/channels`, {
        method: 'POST',
        headers: { ...ADMIN, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const bad = await post({ kind: 'webhook', name: 'x', url: 'file:///etc/passwd' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('invalid_field');
    expect((await post({ kind: 'sms', name: 'x', url: 'http://127.0.0.1:1' })).status).toBe(400);
  });
});

describe('quiet windows', () => {
  it('holds a warning until the quiet window ends (site zone); critical goes now', async () => {
    const site = await seedSite('alerts-quiet', ['page']);
    // page falls from 100 to 30 in 22:00–23:00 UTC (23:00 in Berlin): a critical tracking break
    // and, from the site's own floor rule, a warning.
    await writeVolumes(site.siteId, (event, hour) => {
      if (event === 'other') return 300;
      if (event === 'checkout') return 0;
      return hour === T + 22 * H ? 30 : 100;
    });
    await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/alerts/config`, {
      method: 'PUT',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        timeZone: 'Europe/Berlin',
        quietWindows: [{ start: '22:00', end: '07:00' }],
        rules: [{ id: 'floor', event: 'page', below: 50, recoverAt: 60 }],
      }),
    });
    await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/alerts/channels`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'webhook', name: 'down', url: 'http://127.0.0.1:9/hook' }),
    });

    // 23:15 UTC is 00:15 in Berlin: quiet until 07:00 Berlin, 06:00 UTC.
    await runCron(T + 23 * H + 15 * 60_000);

    const { results } = await env.DB.prepare(
      `SELECT h.kind, h.severity, o.attempts, o.next_attempt_at AS next FROM alert_outbox o
       JOIN alert_history h ON h.id = o.history_id WHERE o.site_id = ? ORDER BY h.kind`,
    )
      .bind(site.siteId)
      .all<{ kind: string; severity: string; attempts: number; next: number }>();
    expect(results.map((r) => [r.kind, r.severity])).toEqual([
      ['rule', 'warning'],
      ['tracking_break', 'critical'],
    ]);
    expect(results[0]).toMatchObject({ attempts: 0, next: Date.parse('2025-03-11T06:00:00Z') });
    expect(results[1]?.attempts).toBe(1);
  });
});

describe('alert admin API', () => {
  it('lists the alert routes and their schemas in the OpenAPI document', async () => {
    const doc = (await (await SELF.fetch(`${BASE}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths)).toContain('/admin/sites/{siteId}/alerts/backtest');
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['AlertConfigInput', 'AlertChannelInput', 'AlertBacktestInput']),
    );
  });

  it('refuses a config whose recovery level is not above its trigger level', async () => {
    await seedSite('alerts-cfg', ['a']);
    const res = await SELF.fetch(`${BASE}/admin/sites/alerts-cfg/alerts/config`, {
      method: 'PUT',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ dropRatio: 0.6, recoverRatio: 0.5 }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'invalid_field' });
  });
});

describe('deliveries of a channel closed after they were queued', () => {
  it('skips them with the reason instead of sending them, and records no attempt', async () => {
    const site = await seedSite('alerts-closed', ['page', 'checkout']);
    // Checkout stops 06:00–09:00; everything else holds.
    await writeVolumes(site.siteId, (event, hour) =>
      event === 'checkout' && hour >= T + 6 * H && hour < T + 9 * H ? 0 : 40,
    );
    const channel = async (name: string) => {
      const res = await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/alerts/channels`, {
        method: 'POST',
        headers: { ...ADMIN, 'Content-Type': 'application/json' },
        // Nothing listens on port 9 of loopback: every attempt fails and stays pending.
        body: JSON.stringify({ kind: 'webhook', name, url: 'http://127.0.0.1:9/hook' }),
      });
      return ((await res.json()) as { id: string }).id;
    };
    const disabled = await channel('disabled later');
    const removed = await channel('removed later');
    const kept = await channel('kept');
    await runCron(T + 7 * H + 15 * 60_000);
    const attemptsBefore = await env.DB.prepare(
      `SELECT o.channel_id AS channel, COUNT(a.id) AS n FROM alert_outbox o
       LEFT JOIN alert_attempts a ON a.outbox_id = o.id WHERE o.site_id = ? GROUP BY o.id`,
    )
      .bind(site.siteId)
      .all<{ channel: string; n: number }>();
    expect(attemptsBefore.results.map((r) => r.n)).toEqual([1, 1, 1]);

    // One channel is disabled through the API, one row removed outside it (an operator's SQL).
    const off = await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/alerts/channels/${disabled}`, {
      method: 'DELETE',
      headers: ADMIN,
    });
    expect(off.status).toBe(200);
    await env.DB.prepare('DELETE FROM alert_channels WHERE id = ?').bind(removed).run();
    // 07:30: the first retry (one minute of backoff) is due for every row.
    await runCron(T + 7 * H + 30 * 60_000);

    const { results } = await env.DB.prepare(
      `SELECT o.channel_id AS channel, o.status, o.attempts, o.last_error AS lastError,
         (SELECT COUNT(*) FROM alert_attempts a WHERE a.outbox_id = o.id) AS tries
       FROM alert_outbox o WHERE o.site_id = ?`,
    )
      .bind(site.siteId)
      .all<{
        channel: string;
        status: string;
        attempts: number;
        lastError: string;
        tries: number;
      }>();
    const byChannel = new Map(results.map((r) => [r.channel, r]));
    expect(byChannel.get(disabled)).toMatchObject({
      status: 'skipped',
      attempts: 1,
      tries: 1,
      lastError: 'skipped: channel disabled after this notice was queued',
    });
    expect(byChannel.get(removed)).toMatchObject({
      status: 'skipped',
      attempts: 1,
      tries: 1,
      lastError: 'skipped: channel removed after this notice was queued',
    });
    expect(byChannel.get(kept)).toMatchObject({ status: 'pending', attempts: 2, tries: 2 });
  });
});
