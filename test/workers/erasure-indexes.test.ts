/**
 * An erasure leaves none of the person's ids in any D1 table, the packed ones included
 * (`event_packs` holds events, `attempt_hours` person keys: `u:<user id>`, `a:<device id>`).
 */
import { env, SELF } from 'cloudflare:test';
import { ADMIN, counts, identify, importBatch, report, seedSite, settle, track } from './helpers';

const BASE = 'https://goalstep.test';
const T = Date.UTC(2025, 3, 7, 10);
const iso = (ms: number) => new Date(ms).toISOString();

/** Every D1 table's rows (as JSON text) that contain `needle`, by table. */
async function tablesNaming(needle: string): Promise<Record<string, number>> {
  const { results: tables } = await env.DB.prepare(
    `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
       AND name NOT LIKE '_cf_%' AND name <> 'd1_migrations'`,
  ).all<{ name: string }>();
  const found: Record<string, number> = {};
  for (const { name } of tables) {
    const { results } = await env.DB.prepare(`SELECT * FROM "${name}"`).all();
    const n = results.filter((row) => JSON.stringify(row).includes(needle)).length;
    if (n > 0) found[name] = n;
  }
  return found;
}

describe('erasure and the packed indexes', () => {
  it("leaves none of an erased person's ids in any D1 table", async () => {
    const site = await seedSite('rv-erase', ['view', 'buy']);
    // Alice browses anonymously (her device's progress rows are written), then signs in.
    await importBatch(site, [
      track('view', { anonymousId: 'alice-phone' }, 'al-1', iso(T)),
      track('view', { anonymousId: 'bob-phone' }, 'bo-1', iso(T + 5_000)),
    ]);
    await settle(site);
    expect(Object.keys(await tablesNaming('alice-phone'))).toContain('attempt_hours');
    await importBatch(site, [
      identify('alice-phone', 'alice@example.com', 'al-2', iso(T + 60_000)),
      track('buy', { userId: 'alice@example.com' }, 'al-3', iso(T + 120_000)),
    ]);
    await settle(site);
    // Alice entered and completed, Bob entered: the progress rows (and their listing) hold both.
    expect(counts(await report(site, '2025-04-07', '2025-04-08'))).toEqual([2, 1]);
    expect(Object.keys(await tablesNaming('alice@example.com'))).toContain('attempt_hours');

    const erased = await SELF.fetch(`${BASE}/admin/sites/rv-erase/people/alice@example.com`, {
      method: 'DELETE',
      headers: ADMIN,
    });
    expect(erased.status).toBe(200);

    // docs/API.md: the person is erased from D1 events, refused events and progress rows.
    expect(counts(await report(site, '2025-04-07', '2025-04-08'))).toEqual([1, 0]);
    expect({
      user: await tablesNaming('alice@example.com'),
      device: await tablesNaming('alice-phone'),
    }).toEqual({ user: {}, device: {} });
  });
});
