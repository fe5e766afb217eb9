/**
 * docs/API.md: a site-scoped admin token "may not act on" another site (403 `forbidden` on every
 * admin route). The report cache bypass (`Cache-Control: no-cache` with an admin bearer) checks
 * only that the token is some admin token (`isAdmin(c)` without the share's site, in
 * src/report/report-routes.tsx), so a token scoped to site A forces uncached recomputation of
 * site B's shared reports (`X-Goalstep-Cache: bypass`), which its own admin routes refuse it.
 */
import { SELF } from 'cloudflare:test';
import { ADMIN, seedSite } from './helpers';

const BASE = 'https://goalstep.test';

describe('report cache bypass', () => {
  it('is refused to an admin token scoped to another site', async () => {
    await seedSite('bypass-own-a', ['view']);
    const other = await seedSite('bypass-other-b', ['view']);
    const made = await SELF.fetch(`${BASE}/admin/tokens`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'scoped-to-a', siteId: 'bypass-own-a' }),
    });
    expect(made.status).toBe(201);
    const { token } = (await made.json()) as { token: string };

    // The scoped token may not act on site B...
    const admin = await SELF.fetch(`${BASE}/admin/sites/bypass-other-b/pending`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(admin.status).toBe(403);

    // ...nor skip the cache of site B's share.
    const url = `${BASE}/r/${other.shareToken}/${other.goalId}?format=json`;
    await (await SELF.fetch(url)).arrayBuffer(); // fills the cache
    const res = await SELF.fetch(url, {
      headers: { Authorization: `Bearer ${token}`, 'Cache-Control': 'no-cache' },
    });
    await res.arrayBuffer();
    expect(res.headers.get('X-Goalstep-Cache')).not.toBe('bypass');
  });
});
