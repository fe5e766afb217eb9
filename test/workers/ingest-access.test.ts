/**
 * Who may write and what is kept out: tenant isolation, allowed origins, rate limits, bots and
 * opt-out signals (C26, C27), write-key rotation and revocation, named admin tokens and the
 * audit log, through the real Worker.
 */
import { env, SELF } from 'cloudflare:test';
import {
  ADMIN,
  counts,
  importBatch,
  ingest,
  report,
  seedSite,
  settle,
  track,
  type TestSite,
} from './helpers';

const BASE = 'https://goalstep.test';
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

function admin(path: string, method = 'GET', body?: unknown, token = ADMIN.Authorization) {
  return SELF.fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

function beacon(writeKey: string, body: unknown, headers: Record<string, string> = {}) {
  return SELF.fetch(`${BASE}/v1/batch`, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${btoa(`${writeKey}:`)}`,
      'Content-Type': 'text/plain',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** The message ids D1 holds for a site, once the site object has copied what it took. */
async function messageIds(siteId: string): Promise<string[]> {
  await settle({ siteId });
  const { results } = await env.DB.prepare(
    'SELECT message_id FROM events WHERE site_id = ? ORDER BY message_id',
  )
    .bind(siteId)
    .all<{ message_id: string }>();
  return results.map((r) => r.message_id);
}

describe('tenant isolation', () => {
  it("writes only to the key's own site, whatever the body says; dedupes per site", async () => {
    const a = await seedSite('tenant-a', ['view']);
    const b = await seedSite('tenant-b', ['view']);
    const event = track('view', { anonymousId: 'shared-anon' }, 'same-id', ago(1000));

    // Site A's key with site B's key in the body: the Authorization header decides.
    const res = await beacon(a.writeKey, { batch: [event], writeKey: b.writeKey });
    expect(await res.json()).toMatchObject({ accepted: 1 });
    // The same message id is a new event for site B.
    expect(await (await beacon(b.writeKey, { batch: [event] })).json()).toMatchObject({
      accepted: 1,
    });
    expect(await messageIds('tenant-a')).toEqual(['same-id']);
    expect(await messageIds('tenant-b')).toEqual(['same-id']);

    await settle(a);
    await settle(b);
    expect(counts(await report(a, today(), tomorrow()))).toEqual([1]);
  });

  it("keeps a site-scoped admin token out of another site's data", async () => {
    await seedSite('scope-a', ['view']);
    await seedSite('scope-b', ['view']);
    const created = await admin('/admin/tokens', 'POST', { name: 'ops-a', siteId: 'scope-a' });
    expect(created.status).toBe(201);
    const { token } = (await created.json()) as { token: string };
    const bearer = `Bearer ${token}`;

    expect((await admin('/admin/sites/scope-a/rejected', 'GET', undefined, bearer)).status).toBe(
      200,
    );
    for (const path of [
      'rejected',
      'status',
      'pending',
      'write-keys',
      'ingest-settings',
      'people/x',
    ]) {
      const res = await admin(`/admin/sites/scope-b/${path}`, 'GET', undefined, bearer);
      expect(res.status, path).toBe(403);
    }
    expect((await admin('/v1/import?site=scope-b', 'POST', { batch: [] }, bearer)).status).toBe(
      403,
    );
    // Only an all-sites token manages tokens.
    expect((await admin('/admin/tokens', 'POST', { name: 'x' }, bearer)).status).toBe(403);

    // Stored hashed: the token text is nowhere in D1.
    const row = await env.DB.prepare('SELECT * FROM admin_tokens WHERE name = ?')
      .bind('ops-a')
      .first();
    expect(JSON.stringify(row)).not.toContain(token);
    expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);

    // Revoked, it opens nothing; both changes are in the audit log under "root".
    expect((await admin('/admin/tokens/ops-a', 'DELETE')).status).toBe(200);
    expect((await admin('/admin/sites/scope-a/rejected', 'GET', undefined, bearer)).status).toBe(
      401,
    );
    // Revoking it again changes nothing, so it leaves no audit entry.
    expect((await admin('/admin/tokens/ops-a', 'DELETE')).status).toBe(404);
    const audit = (await (await admin('/admin/audit')).json()) as {
      entries: Array<{ actor: string; action: string; detail: unknown }>;
    };
    const mine = audit.entries.filter((e) => JSON.stringify(e.detail).includes('ops-a'));
    expect(mine.map((e) => [e.actor, e.action])).toEqual([
      ['root', 'admin_token.revoke'],
      ['root', 'admin_token.create'],
    ]);
  });
});

describe('write keys', () => {
  it("keeps the old key during a rotation's grace period, then only the new one", async () => {
    const site = await seedSite('rotate', ['view']);
    const rotated = await admin('/admin/sites/rotate/write-keys/rotate', 'POST', {
      graceSeconds: 3600,
    });
    expect(rotated.status).toBe(201);
    const { writeKey: fresh, id } = (await rotated.json()) as { writeKey: string; id: string };

    const send = (key: string, n: number) =>
      beacon(key, { batch: [track('view', { anonymousId: 'rk' }, `rk-${n}`, ago(1000))] });
    expect((await send(site.writeKey, 1)).status).toBe(200);
    expect((await send(fresh, 2)).status).toBe(200);

    // A second rotation with no grace ends both earlier keys at once.
    const again = await admin('/admin/sites/rotate/write-keys/rotate', 'POST', { graceSeconds: 0 });
    const { writeKey: newest } = (await again.json()) as { writeKey: string };
    expect((await send(site.writeKey, 3)).status).toBe(401);
    expect((await send(fresh, 4)).status).toBe(401);
    expect((await send(newest, 5)).status).toBe(200);

    const keys = (await (await admin('/admin/sites/rotate/write-keys')).json()) as {
      keys: Array<{ id: string; active: boolean }>;
    };
    expect(keys.keys.filter((k) => k.active)).toHaveLength(1);
    expect(keys.keys.find((k) => k.id === id)?.active).toBe(false);
    expect(JSON.stringify(keys)).not.toContain(newest);
    expect(await messageIds('rotate')).toEqual(['rk-1', 'rk-2', 'rk-5']);
  });

  it('stops a revoked key at once', async () => {
    const site = await seedSite('revoke', ['view']);
    const { keys } = (await (await admin('/admin/sites/revoke/write-keys')).json()) as {
      keys: Array<{ id: string }>;
    };
    expect((await admin(`/admin/sites/revoke/write-keys/${keys[0]?.id}`, 'DELETE')).status).toBe(
      200,
    );
    const res = await beacon(site.writeKey, {
      batch: [track('view', { anonymousId: 'r' }, 'r1', ago(1000))],
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'invalid_write_key' });
  });
});

describe('allowed origins (C27)', () => {
  it('refuses a beacon of another origin, keeps it with it, lets servers through', async () => {
    const site = await seedSite('origins', ['order_placed']);
    const set = await admin('/admin/sites/origins/ingest-settings', 'PATCH', {
      allowedOrigins: ['https://shop.example'],
    });
    expect(set.status).toBe(200);
    const body = (id: string) => ({
      batch: [track('order_placed', { anonymousId: 'o' }, id, ago(1000))],
    });

    const foreign = await beacon(site.writeKey, body('c27-m1'), {
      Origin: 'https://not-the-customer.example',
    });
    expect(foreign.status).toBe(403);
    expect(await foreign.json()).toMatchObject({ code: 'origin_not_allowed' });
    expect(
      (await beacon(site.writeKey, body('ok-1'), { Origin: 'https://shop.example' })).status,
    ).toBe(200);
    expect((await beacon(site.writeKey, body('ok-2'))).status).toBe(200);

    expect(await messageIds('origins')).toEqual(['ok-1', 'ok-2']);
    const listed = (await (await admin('/admin/sites/origins/rejected')).json()) as {
      byCode: Array<{ code: string; count: number }>;
      rejected: Array<{ code: string; rule: string }>;
    };
    expect(listed.rejected).toMatchObject([
      { code: 'origin_not_allowed', rule: 'https://not-the-customer.example' },
    ]);
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After past the per-key limit, per site', async () => {
    const limited = await seedSite('rate-key', ['view']);
    const other = await seedSite('rate-other', ['view']);
    await admin('/admin/sites/rate-key/ingest-settings', 'PATCH', { ratePerKey: 3 });
    const send = (site: TestSite, n: number) =>
      beacon(site.writeKey, {
        batch: [track('view', { anonymousId: 'rl' }, `rl-${n}`, ago(1000))],
      });

    for (let n = 1; n <= 3; n += 1) expect((await send(limited, n)).status).toBe(200);
    const refused = await send(limited, 4);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ code: 'rate_limited' });
    const wait = Number(refused.headers.get('Retry-After'));
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    // Another site's key is counted on its own.
    expect((await send(other, 1)).status).toBe(200);
    expect(await messageIds('rate-key')).toEqual(['rl-1', 'rl-2', 'rl-3']);
  });

  it('limits one client address without throttling another', async () => {
    const site = await seedSite('rate-addr', ['view']);
    await admin('/admin/sites/rate-addr/ingest-settings', 'PATCH', { ratePerAddress: 2 });
    const send = (address: string, n: number) =>
      beacon(
        site.writeKey,
        { batch: [track('view', { anonymousId: 'ra' }, `ra-${address}-${n}`, ago(1000))] },
        {
          'CF-Connecting-IP': address,
        },
      );
    expect((await send('192.0.2.1', 1)).status).toBe(200);
    expect((await send('192.0.2.1', 2)).status).toBe(200);
    expect((await send('192.0.2.1', 3)).status).toBe(429);
    expect((await send('192.0.2.2', 1)).status).toBe(200);
    // The address itself is never stored.
    await settle({ siteId: 'rate-addr' });
    const { results } = await env.DB.prepare('SELECT context FROM events WHERE site_id = ?')
      .bind('rate-addr')
      .all<{ context: string }>();
    for (const row of results) expect(row.context).not.toContain('192.0.2');
  });
});

describe('bots and opt-out signals (C26)', () => {
  it('stores bots, crawlers and prerenders as filtered with the rule, not counted', async () => {
    const site = await seedSite('c26', ['landing_viewed', 'signup_started']);
    const ua = (userAgent: string) => ({ userAgent });
    const res = await beacon(site.writeKey, {
      batch: [
        {
          ...track('landing_viewed', { anonymousId: 'anon-c26a' }, 'c26-m1', ago(5000)),
          context: ua(
            'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
              'HeadlessChrome/120.0.0.0 Safari/537.36',
          ),
        },
        {
          ...track('landing_viewed', { anonymousId: 'anon-c26b' }, 'c26-m2', ago(4000)),
          context: ua('Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)'),
        },
        {
          ...track('landing_viewed', { anonymousId: 'anon-c26d' }, 'c26-m4', ago(3000)),
          context: ua(
            'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like ' +
              'Gecko) Version/17.4 Safari/605.1.15',
          ),
        },
        track('signup_started', { anonymousId: 'anon-c26d' }, 'c26-m5', ago(1000)),
      ],
    });
    const answer = (await res.json()) as {
      accepted: number;
      filtered: Array<{ index: number; code: string; rule: string }>;
    };
    expect(answer.accepted).toBe(2);
    expect(answer.filtered.map((f) => [f.index, f.code])).toEqual([
      [0, 'bot'],
      [1, 'bot'],
    ]);
    expect(answer.filtered[0]?.rule).toBe('headless');

    const prerender = await beacon(
      site.writeKey,
      {
        batch: [
          {
            ...track('landing_viewed', { anonymousId: 'anon-c26c' }, 'c26-m3', ago(2000)),
            context: ua(
              'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like ' +
                'Gecko) Chrome/124.0 Safari/537.36',
            ),
          },
        ],
      },
      { 'Sec-Purpose': 'prefetch;prerender' },
    );
    expect(await prerender.json()).toMatchObject({
      accepted: 0,
      filtered: [{ index: 0, code: 'prerender' }],
    });

    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    const listed = (await (
      await admin('/admin/sites/c26/rejected?disposition=filtered')
    ).json()) as {
      byCode: Array<{ disposition: string; code: string; count: number }>;
      rejected: Array<{ messageId: string; rule: string }>;
    };
    expect(listed.byCode).toEqual([
      { disposition: 'filtered', code: 'bot', count: 2 },
      { disposition: 'filtered', code: 'prerender', count: 1 },
    ]);
    expect(listed.rejected.map((r) => r.messageId).sort()).toEqual(['c26-m1', 'c26-m2', 'c26-m3']);
  });

  it("does not judge a server SDK by its own user agent, only a browser's", async () => {
    const site = await seedSite('server-ua', ['view']);
    const event = track('view', { anonymousId: 'srv' }, 'srv-1', ago(1000));
    const server = await beacon(site.writeKey, { batch: [event] }, { 'User-Agent': 'curl/8.5.0' });
    expect(await server.json()).toMatchObject({ accepted: 1, filtered: [] });
    const browser = await beacon(
      site.writeKey,
      { batch: [{ ...event, messageId: 'srv-2' }] },
      { 'User-Agent': 'curl/8.5.0', Origin: 'https://shop.example' },
    );
    expect(await browser.json()).toMatchObject({ accepted: 0, filtered: [{ code: 'bot' }] });
  });

  it('honours GPC only where the site turned it on, keeping no payload', async () => {
    const site = await seedSite('gpc', ['view']);
    const send = (id: string) =>
      beacon(
        site.writeKey,
        { batch: [track('view', { anonymousId: 'gpc-anon' }, id, ago(1000))] },
        { 'Sec-GPC': '1' },
      );
    expect(await (await send('gpc-1')).json()).toMatchObject({ accepted: 1 });
    await admin('/admin/sites/gpc/ingest-settings', 'PATCH', { honorPrivacySignals: true });
    expect(await (await send('gpc-2')).json()).toMatchObject({
      accepted: 0,
      filtered: [{ code: 'privacy_opt_out' }],
    });
    expect(await messageIds('gpc')).toEqual(['gpc-1']);
    const row = await env.DB.prepare(
      "SELECT raw FROM rejected_events WHERE site_id = 'gpc' AND code = 'privacy_opt_out'",
    ).first<{ raw: string | null }>();
    expect(row).toEqual({ raw: null });
  });

  it('files a filtered event once when its batch is retried', async () => {
    const site = await seedSite('bot-retry', ['view']);
    const body = {
      batch: [
        {
          ...track('view', { anonymousId: 'b' }, 'bot-1', ago(1000)),
          context: { userAgent: 'Googlebot/2.1 (+http://www.google.com/bot.html)' },
        },
      ],
    };
    await beacon(site.writeKey, body);
    await beacon(site.writeKey, body);
    const n = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM rejected_events WHERE site_id = 'bot-retry'",
    ).first('n');
    expect(n).toBe(1);
  });
});

describe('the import path', () => {
  it('accepts any event time and still keeps bots out of funnels', async () => {
    const site = await seedSite('import-bots', ['view']);
    const res = await importBatch(site, [
      track('view', { anonymousId: 'old' }, 'imp-1', '2019-06-01T00:00:00Z'),
      {
        ...track('view', { anonymousId: 'bot' }, 'imp-2', '2019-06-01T00:00:01Z'),
        context: { userAgent: 'AhrefsBot/7.0' },
      },
    ]);
    expect(await res.json()).toMatchObject({ accepted: 1, filtered: [{ index: 1, code: 'bot' }] });
  });
});

describe('the API description', () => {
  it('lists the ingest admin routes with their input schemas', async () => {
    const doc = (await (await SELF.fetch(`${BASE}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/admin/sites/{siteId}/rejected/resubmit',
        '/admin/audit',
        '/admin/tokens',
      ]),
    );
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['IngestSettings', 'Resubmit', 'RotateWriteKey', 'AdminTokenInput']),
    );
  });
});

describe('the audit log', () => {
  it('records site, goal and share changes with who made them', async () => {
    await seedSite('audited', ['view']);
    const audit = (await (await admin('/admin/audit?site=audited')).json()) as {
      entries: Array<{ actor: string; action: string }>;
    };
    expect(audit.entries.map((e) => [e.actor, e.action])).toEqual([
      ['root', 'share.create'],
      ['root', 'goal.put'],
      ['root', 'site.put'],
    ]);
  });
});

describe('server SDKs', () => {
  it("accepts Segment's Node library: its user agent and Sec-Fetch-Mode are no bot", async () => {
    const site = await seedSite('node-sdk', ['view']);
    const res = await beacon(
      site.writeKey,
      { batch: [track('view', { anonymousId: 'sdk' }, 'sdk-1', ago(1000))] },
      { 'User-Agent': 'analytics-node-next/latest', 'Sec-Fetch-Mode': 'cors' },
    );
    expect(await res.json()).toMatchObject({ accepted: 1, filtered: [] });
  });
});
