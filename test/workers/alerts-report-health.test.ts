/**
 * The report's step health for a range: the incidents open at some time in the range and those
 * open now, in the page and in the JSON (`stepHealth`), never an alert that began after the range.
 */
import { SELF } from 'cloudflare:test';
import { ADMIN, seedSite } from './helpers';
import { H, runCron, T, writeVolumes } from './alerts-helpers';

const BASE = 'https://goalstep.test';

interface Health {
  key: string;
  openNow: boolean;
  duringRange: boolean;
  since: number;
  recoveredFrom: number | null;
}

async function stepHealth(token: string, from: string, to: string): Promise<Health[]> {
  const res = await SELF.fetch(`${BASE}/r/${token}/goal?from=${from}&to=${to}&format=json`, {
    headers: { ...ADMIN, 'Cache-Control': 'no-cache' },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { stepHealth: Health[] }).stepHealth;
}

describe('step health in the report', () => {
  it('lists the incidents open during the range and open now, not those after it', async () => {
    const site = await seedSite('health-range', ['page', 'checkout']);
    // 10 March (T): checkout stops 06:00–09:00; page stops from 20:00 on.
    await writeVolumes(site.siteId, (event, hour) => {
      if (event === 'checkout' && hour >= T + 6 * H && hour < T + 9 * H) return 0;
      if (event === 'page' && hour >= T + 20 * H) return 0;
      return 40;
    });
    for (const at of [T + 7 * H, T + 10 * H, T + 21 * H]) await runCron(at + 15 * 60_000);

    const before = await stepHealth(site.shareToken, '2025-03-09', '2025-03-10');
    const day = await stepHealth(site.shareToken, '2025-03-10', '2025-03-11');

    // The day before: nothing was open then (checkout began after it); page is open now.
    expect(before.map((h) => [h.key, h.duringRange, h.openNow])).toEqual([
      ['volume:page', false, true],
    ]);
    // 10 March: the checkout break (06:00, recovered from 09:00), and the page break, open now.
    expect(day.map((h) => [h.key, h.duringRange, h.openNow])).toEqual([
      ['volume:page', true, true],
      ['volume:checkout', true, false],
    ]);
    expect(day[1]).toMatchObject({ since: T + 6 * H, recoveredFrom: T + 9 * H });
  });

  it('labels them on the page', async () => {
    const site = await seedSite('health-page', ['page', 'checkout']);
    await writeVolumes(site.siteId, (event, hour) =>
      event === 'checkout' && hour >= T + 6 * H && hour < T + 9 * H ? 0 : 40,
    );
    for (const at of [T + 7 * H, T + 10 * H]) await runCron(at + 15 * 60_000);

    const res = await SELF.fetch(
      `${BASE}/r/${site.shareToken}/goal?from=2025-03-10&to=2025-03-11`,
      {
        headers: { ...ADMIN, 'Cache-Control': 'no-cache' },
      },
    );
    const html = await res.text();

    expect(html).toContain('1 in this range. None open now.');
    expect(html).toContain('since 2025-03-10T06:00 UTC, recovered 2025-03-10T09:00 UTC');
  });
});
