/**
 * Alert channels: only public destinations unless the Worker allows private hosts (checked when
 * a channel is stored and again when a notice is sent), and the alert routes of an unknown site.
 */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import { ADMIN, seedSite } from './helpers';
import { H, runCron, T, writeVolumes } from './alerts-helpers';

const BASE = 'https://goalstep.test';
/** The Worker's variables as a deployment has them: private hosts not allowed. */
const DEPLOYED = { ALERTS_ALLOW_PRIVATE_HOSTS: undefined };

async function postChannel(siteId: string, body: unknown, vars: object = DEPLOYED) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`${BASE}/admin/sites/${siteId}/alerts/channels`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }),
    { ...env, ...vars },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
}

describe('channel destinations', () => {
  const refused = [
    'http://10.0.0.1/hook',
    'http://172.16.5.4/hook',
    'http://192.168.1.1/hook',
    'http://169.254.169.254/latest/meta-data/',
    'http://0.0.0.0:20511/',
    'http://127.0.0.1:20511/',
    'http://100.64.0.1/hook',
    'http://[::1]:20511/',
    'http://[fc00::1]/hook',
    'http://[fd12:3456::1]/hook',
    'http://[fe80::1]/hook',
    'http://[::ffff:127.0.0.1]/hook',
    'http://[::ffff:a9fe:a9fe]/hook',
    'http://localhost:20511/',
    'http://LOCALHOST./hook',
    'http://hooks.localhost/hook',
    // Numeric spellings of IPv4: decimal, hex, octal, short forms.
    'http://2130706433/',
    'http://0x7f000001/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://0x08.0x08.0x08.0x08/',
    'https://user:pw@10.1.2.3:8443/hook',
  ];
  for (const url of refused) {
    it(`refuses ${url} with private_destination`, async () => {
      await seedSite('ch-private', ['page']);

      const res = await postChannel('ch-private', { kind: 'webhook', name: 'x', url });

      expect(res.status).toBe(400);
      expect(res.body.code).toBe('private_destination');
      expect(res.body.message).toMatch(/^url: /);
      const stored = await env.DB.prepare(
        "SELECT COUNT(*) AS n FROM alert_channels WHERE site_id = 'ch-private'",
      ).first<{ n: number }>();
      expect(stored?.n).toBe(0);
    });
  }

  it('accepts public hosts, by name or public address', async () => {
    await seedSite('ch-public', ['page']);
    const urls = [
      'https://hooks.slack.com/services/T0/B0/X',
      'https://events.pagerduty.com/v2/enqueue',
      'http://8.8.8.8/hook',
      'http://[2606:4700:4700::1111]/hook',
    ];

    const statuses = [];
    for (const url of urls) {
      statuses.push((await postChannel('ch-public', { kind: 'slack', name: 'x', url })).status);
    }

    expect(statuses).toEqual([201, 201, 201, 201]);
  });

  it('accepts a loopback receiver when ALERTS_ALLOW_PRIVATE_HOSTS is "1"', async () => {
    await seedSite('ch-allowed', ['page']);

    const res = await postChannel(
      'ch-allowed',
      { kind: 'webhook', name: 'local', url: 'http://127.0.0.1:20511/' },
      { ALERTS_ALLOW_PRIVATE_HOSTS: '1' },
    );

    expect(res.status).toBe(201);
  });

  it('skips a notice to a private host stored while allowed, once no longer allowed', async () => {
    const site = await seedSite('ch-send', ['page', 'checkout']);
    // Checkout stops 06:00–09:00; everything else holds: one critical break at 07:15.
    await writeVolumes(site.siteId, (event, hour) =>
      event === 'checkout' && hour >= T + 6 * H && hour < T + 9 * H ? 0 : 40,
    );
    const stored = await postChannel(
      site.siteId,
      { kind: 'webhook', name: 'local', url: 'http://127.0.0.1:9/hook' },
      { ALERTS_ALLOW_PRIVATE_HOSTS: '1' },
    );
    expect(stored.status).toBe(201);

    await runCron(T + 7 * H + 15 * 60_000, DEPLOYED);

    const { results } = await env.DB.prepare(
      `SELECT o.status, o.attempts, o.last_error AS lastError,
         (SELECT COUNT(*) FROM alert_attempts a WHERE a.outbox_id = o.id) AS tries
       FROM alert_outbox o WHERE o.site_id = ?`,
    )
      .bind(site.siteId)
      .all<{ status: string; attempts: number; lastError: string; tries: number }>();
    expect(results).toEqual([
      {
        status: 'skipped',
        attempts: 0,
        tries: 0,
        lastError: 'skipped: private destination (127.0.0.1 is not a public address (loopback))',
      },
    ]);
  });
});

describe('alert routes of an unknown site', () => {
  const paths = ['alerts/channels', 'alerts', 'alerts/history', 'alerts/deliveries'];
  for (const path of paths) {
    it(`answers 404 site_not_found on GET ${path}`, async () => {
      const res = await SELF.fetch(`${BASE}/admin/sites/nosuch-alerts/${path}`, {
        headers: ADMIN,
      });

      expect(res.status).toBe(404);
      expect(((await res.json()) as { code: string }).code).toBe('site_not_found');
    });
  }
});
