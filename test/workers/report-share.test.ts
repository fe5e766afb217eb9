/**
 * Share tokens, caching and escaping of the read-only report, through the real Worker with the
 * real Cache API and local D1.
 */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import { sha256Hex } from '../../src/lib/crypto';
import { ADMIN, importBatch, seedSite, settle, track, waitReady, type TestSite } from './helpers';

const BASE = 'https://goalstep.test';
const url = (token: string, goalId: string, extra = '') =>
  `${BASE}/r/${token}/${goalId}?from=2025-03-03&to=2025-03-04${extra}`;

async function admin(path: string, method: string, body?: unknown): Promise<Response> {
  return SELF.fetch(`${BASE}${path}`, {
    method,
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/**
 * Requests a URL until the answer comes from the cache: the first answer is written to the cache
 * after it is sent (`waitUntil`), so the very next request may still miss.
 */
async function untilCached(target: string): Promise<Response> {
  for (let i = 0; i < 50; i += 1) {
    const res = await SELF.fetch(target);
    if (res.headers.get('X-Goalstep-Cache') === 'hit') return res;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`never served from the cache: ${target}`);
}

async function createShare(site: TestSite, body: Record<string, unknown>) {
  const res = await admin(`/admin/sites/${site.siteId}/shares`, 'POST', body);
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; token: string };
}

describe('share tokens', () => {
  it('opens the report with a valid token and refuses an unknown one with 404', async () => {
    const site = await seedSite('tok-valid', ['view']);
    expect((await SELF.fetch(url(site.shareToken, 'goal'))).status).toBe(200);
    const unknown = await SELF.fetch(url('sh_not_a_real_token_000000000', 'goal', '&format=json'));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ code: 'not_found', message: 'no such report' });
  });

  it('refuses a revoked token at once, even when its answer is cached', async () => {
    const site = await seedSite('tok-revoke', ['view']);
    const share = await createShare(site, {});
    expect((await SELF.fetch(url(share.token, 'goal'))).status).toBe(200);
    expect((await untilCached(url(share.token, 'goal'))).status).toBe(200);

    const revoke = await admin(`/admin/sites/${site.siteId}/shares/${share.id}`, 'DELETE');
    expect(revoke.status).toBe(200);
    expect((await SELF.fetch(url(share.token, 'goal'))).status).toBe(404);
    // Another share of the same site still reads the same cached answer.
    expect((await SELF.fetch(url(site.shareToken, 'goal'))).status).toBe(200);
  });

  it('serves an answer fresh for 1 min, stale while revalidating to 10, then anew', async () => {
    const site = await seedSite('tok-ages', ['view']);
    const target = url(site.shareToken, site.goalId, '&format=json');
    const start = Date.UTC(2025, 2, 10);
    // The declared clock override moves `now`; each answer's background work is awaited.
    const state = async (ms: number) => {
      const ctx = createExecutionContext();
      const at = new Date(start + ms).toISOString();
      const res = await worker.fetch(new Request(target), { ...env, GOALSTEP_NOW: at }, ctx);
      await waitOnExecutionContext(ctx);
      expect(res.status).toBe(200);
      return res.headers.get('X-Goalstep-Cache');
    };
    expect(await state(0)).toBe('miss');
    expect(await state(1_000)).toBe('hit');
    expect(await state(60_000)).toBe('hit'); // 60 s old: still fresh
    expect(await state(60_001)).toBe('stale'); // served, and computed again behind it
    expect(await state(60_002)).toBe('hit'); // the answer computed at 60,001
    expect(await state(60_001 + 600_000)).toBe('stale');
    expect(await state(60_001 + 600_000 + 600_001)).toBe('miss'); // too old to serve at all
  });

  it('refuses an expired token', async () => {
    const site = await seedSite('tok-expired', ['view']);
    // The admin API refuses a past expiry, so a share that has since expired is written as such.
    const token = 'sh_tok_expired_since_then_0001';
    await env.DB.prepare(
      `INSERT INTO shares (id, token_hash, site_id, goal_ids, expires_at, created_at)
       VALUES ('expired', ?, ?, NULL, ?, ?)`,
    )
      .bind(await sha256Hex(token), site.siteId, Date.now() - 1000, Date.now() - 60_000)
      .run();
    expect((await SELF.fetch(url(token, 'goal'))).status).toBe(404);
  });

  it('refuses a share dead on arrival or naming a goal the site lacks', async () => {
    const site = await seedSite('tok-refused', ['view']);
    const post = (body: unknown) => admin(`/admin/sites/${site.siteId}/shares`, 'POST', body);
    const past = await post({ expiresAt: '2020-01-01T00:00:00Z' });
    expect([past.status, ((await past.json()) as { code: string }).code]).toEqual([
      400,
      'invalid_expiry',
    ]);
    const nope = await post({ goalIds: ['goal', 'nope'] });
    expect(nope.status).toBe(404);
    expect(await nope.json()).toMatchObject({ code: 'goal_not_found' });
    // A goal of another site is not this site's goal.
    await seedSite('tok-refused-other', ['view']);
    await admin('/admin/sites/tok-refused-other/goals/theirs', 'PUT', {
      name: 'Theirs',
      steps: [{ event: 'view' }],
    });
    expect((await post({ goalIds: ['theirs'] })).status).toBe(404);
    const future = new Date(Date.now() + 86_400_000).toISOString();
    expect((await post({ goalIds: ['goal'], expiresAt: future })).status).toBe(201);
  });

  it('lists shares without their tokens or hashes', async () => {
    const site = await seedSite('tok-list', ['view']);
    const expiresAt = '2099-01-01T00:00:00.000Z';
    const scoped = await createShare(site, { goalIds: ['goal'], expiresAt });
    await admin(`/admin/sites/${site.siteId}/shares/${scoped.id}`, 'DELETE');

    const res = await admin(`/admin/sites/${site.siteId}/shares`, 'GET');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(scoped.token);
    expect(text).not.toContain(site.shareToken);
    expect(text).not.toContain(await sha256Hex(scoped.token));
    const { shares } = JSON.parse(text) as {
      shares: Array<{ id: string; goalIds: string[] | null; expiresAt: string | null }>;
    };
    // The seeded share (every goal, no expiry) and the scoped one, now revoked.
    expect(shares).toHaveLength(2);
    const listed = shares.find((s) => s.id === scoped.id);
    expect(listed).toMatchObject({ goalIds: ['goal'], expiresAt });
    expect(typeof (listed as unknown as { revokedAt: unknown }).revokedAt).toBe('string');
    expect(shares.find((s) => s.id !== scoped.id)).toMatchObject({
      goalIds: null,
      expiresAt: null,
      revokedAt: null,
    });
  });

  it('reads only the goals a share names, and nothing of another site', async () => {
    const site = await seedSite('tok-scope', ['view']);
    const other = await seedSite('tok-other', ['view']);
    await admin(`/admin/sites/${site.siteId}/goals/second`, 'PUT', {
      name: 'Second',
      steps: [{ event: 'view' }],
    });
    const scoped = await createShare(site, { goalIds: ['goal'] });
    expect((await SELF.fetch(url(scoped.token, 'goal'))).status).toBe(200);
    expect((await SELF.fetch(url(scoped.token, 'second'))).status).toBe(404);
    // Both sites have a goal called `goal`; a share of one never reads the other's.
    const mine = await (await SELF.fetch(url(site.shareToken, 'goal', '&format=json'))).json();
    await importBatch(other, [track('view', { anonymousId: 'x' }, 'o1', '2025-03-03T10:00:00Z')]);
    await settle(other);
    const fresh = await SELF.fetch(url(site.shareToken, 'goal', '&format=json'), {
      headers: { ...ADMIN, 'Cache-Control': 'no-cache' },
    });
    expect(((await fresh.json()) as { entered: number }).entered).toBe(
      (mine as { entered: number }).entered,
    );
  });
});

describe('report caching', () => {
  it('answers a matching If-None-Match with 304 and no body', async () => {
    const site = await seedSite('etag', ['view']);
    const first = await SELF.fetch(url(site.shareToken, 'goal'));
    const etag = first.headers.get('ETag');
    expect(etag).toMatch(/^W\/"[0-9a-f]{32}"$/);
    expect(first.headers.get('Cache-Control')).toBe('private, no-cache');

    const again = await SELF.fetch(url(site.shareToken, 'goal'), {
      headers: { 'If-None-Match': etag ?? '' },
    });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
  });

  it('serves a second request from the cache and lets only an admin bypass it', async () => {
    const site = await seedSite('cache-hit', ['view']);
    expect((await SELF.fetch(url(site.shareToken, 'goal'))).headers.get('X-Goalstep-Cache')).toBe(
      'miss',
    );
    await untilCached(url(site.shareToken, 'goal'));
    const anonymousBypass = await SELF.fetch(url(site.shareToken, 'goal'), {
      headers: { 'Cache-Control': 'no-cache' },
    });
    expect(anonymousBypass.headers.get('X-Goalstep-Cache')).toBe('hit');
    const adminBypass = await SELF.fetch(url(site.shareToken, 'goal'), {
      headers: { ...ADMIN, 'Cache-Control': 'no-cache' },
    });
    expect(adminBypass.headers.get('X-Goalstep-Cache')).toBe('bypass');
  });
});

describe('escaping', () => {
  it('renders hostile names as text in HTML, neutralised in CSV and intact in JSON', async () => {
    const site = await seedSite('escape', ['view']);
    const hostile = '<script>alert(1)</script>';
    const formula = '=HYPERLINK("http://evil.invalid","x")';
    await admin(`/admin/sites/${site.siteId}/goals/goal`, 'PUT', {
      name: hostile,
      steps: [{ event: 'view', name: formula }],
    });
    await waitReady(site.siteId, 'goal', 2);

    const html = await (await SELF.fetch(url(site.shareToken, 'goal'))).text();
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');

    const csv = await (await SELF.fetch(url(site.shareToken, 'goal', '&format=csv'))).text();
    const row = csv.split('\r\n')[1] ?? '';
    expect(row).toContain(`"'=HYPERLINK(""http://evil.invalid"",""x"")"`);

    const json = (await (
      await SELF.fetch(url(site.shareToken, 'goal', '&format=json'))
    ).json()) as {
      goal: { name: string };
      steps: Array<{ name: string }>;
    };
    expect(json.goal.name).toBe(hostile);
    expect(json.steps[0]?.name).toBe(formula);
  });
});

describe('logging', () => {
  it('never writes a share token into a logged path', async () => {
    const { redactPath } = await import('../../src/index');
    expect(redactPath('/r/sh_secret_token_value_0001/goal')).toBe('/r/[token]/goal');
    expect(redactPath('/v1/batch')).toBe('/v1/batch');
  });
});

describe('revalidation', () => {
  it('keeps the ETag when unchanged data is recomputed; matches weak and listed tags', async () => {
    const site = await seedSite('etag-stable', ['view']);
    const fresh = { headers: { ...ADMIN, 'Cache-Control': 'no-cache' } };
    const a =
      (await SELF.fetch(url(site.shareToken, 'goal', '&format=json'), fresh)).headers.get('ETag') ??
      '';
    await new Promise((resolve) => setTimeout(resolve, 5));
    const b = (await SELF.fetch(url(site.shareToken, 'goal', '&format=json'), fresh)).headers.get(
      'ETag',
    );
    expect(b).toBe(a);

    const opaque = a.replace(/^W\//, '');
    for (const header of [opaque, `"other", ${a}`, '*']) {
      const res = await SELF.fetch(url(site.shareToken, 'goal', '&format=json'), {
        headers: { 'If-None-Match': header },
      });
      expect(res.status).toBe(304);
    }
    const miss = await SELF.fetch(url(site.shareToken, 'goal', '&format=json'), {
      headers: { 'If-None-Match': '"something-else"' },
    });
    expect(miss.status).toBe(200);
  });

  it('shows a page, not JSON, for a bad link opened in a browser', async () => {
    const res = await SELF.fetch(url('sh_not_a_real_token_000000000', 'goal'));
    expect(res.status).toBe(404);
    expect(res.headers.get('Content-Type')).toContain('text/html');
    expect(await res.text()).toContain('unknown, revoked or expired');
  });
});

describe('share and view guards (review findings)', () => {
  it('refuses to re-create a chosen token with other limits; a repeat is idempotent', async () => {
    const site = await seedSite('share-again', ['view']);
    const first = await admin(`/admin/sites/${site.siteId}/shares`, 'POST', {
      token: 'sh_chosen_token_abcdef01',
    });
    expect(first.status).toBe(201);
    const repeat = await admin(`/admin/sites/${site.siteId}/shares`, 'POST', {
      token: 'sh_chosen_token_abcdef01',
    });
    expect(repeat.status).toBe(200);
    const narrowed = await admin(`/admin/sites/${site.siteId}/shares`, 'POST', {
      token: 'sh_chosen_token_abcdef01',
      goalIds: ['goal'],
    });
    expect(narrowed.status).toBe(409);
    expect(await narrowed.json()).toMatchObject({ code: 'share_token_taken' });
  });

  it('refuses a zero or year-long window override', async () => {
    const site = await seedSite('window-guard', ['view']);
    for (const window of ['0d', '0m', '99999d']) {
      const res = await SELF.fetch(url(site.shareToken, 'goal', `&format=json&window=${window}`));
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid_window' });
    }
  });
});
