/**
 * An admin read of a site that does not exist answers `404 site_not_found`, as the catalogue,
 * identity, shares, ingest settings, alerts and `/v1/import?site=` already do (docs/API.md).
 * Today `/status`, `/pending`, `/goals`, `/rejected`, `/write-keys` and `POST /rebuild` answer
 * 200/202 with zeros for a mistyped site id, so a script polling `/pending` for `demo-typo`
 * reads `{ pendingBatches: 0 }` at once and reports its send as written.
 */
import { SELF } from 'cloudflare:test';
import { ADMIN, seedSite } from './helpers';

const BASE = 'https://goalstep.test';

describe('admin routes on an unknown site', () => {
  it('answer 404 site_not_found, like the catalogue does', async () => {
    await seedSite('known-site-nu12', ['view']);
    const known = await SELF.fetch(`${BASE}/admin/sites/known-site-nu12/pending`, {
      headers: ADMIN,
    });
    expect(known.status).toBe(200);
    // The reference behaviour, already in place.
    const catalogue = await SELF.fetch(`${BASE}/admin/sites/no-such-site-nu12/catalogue`, {
      headers: ADMIN,
    });
    expect(catalogue.status).toBe(404);
    expect(await catalogue.json()).toMatchObject({ code: 'site_not_found' });

    const answers: Record<string, [number, unknown]> = {};
    for (const [method, path] of [
      ['GET', 'pending'],
      ['GET', 'status'],
      ['GET', 'goals'],
      ['GET', 'rejected'],
      ['GET', 'write-keys'],
      ['POST', 'rebuild'],
    ] as const) {
      const res = await SELF.fetch(`${BASE}/admin/sites/no-such-site-nu12/${path}`, {
        method,
        headers: ADMIN,
      });
      answers[`${method} ${path}`] = [res.status, await res.json()];
    }
    for (const [route, [status, body]] of Object.entries(answers)) {
      expect({ route, status, body }).toMatchObject({
        route,
        status: 404,
        body: { code: 'site_not_found' },
      });
    }
  });
});
