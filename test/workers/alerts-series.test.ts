/**
 * The series the checks read from D1: stored step volumes come back hour by hour as they were
 * written, within the range asked for, whatever shape the read takes on the way.
 */
import { env } from 'cloudflare:test';
import { loadSiteSeries } from '../../src/alerts/series-store';

const H = 3_600_000;
const T = Date.parse('2025-03-10T00:00:00Z');

async function store(rows: Array<[site: string, event: string, hour: number, count: number]>) {
  await env.DB.batch(
    rows.map(([site, event, hour, count]) =>
      env.DB.prepare(
        `INSERT INTO step_volumes (site_id, event, hour, count, updated_at, counted_to)
         VALUES (?, ?, ?, ?, 0, ?)`,
      ).bind(site, event, hour, count, hour + H),
    ),
  );
}

describe('loadSiteSeries', () => {
  it("reads each event's counts in [from, to) as stored, zeros and other sites out", async () => {
    await store([
      ['s2', 'view', T - 9 * H, 5], // another site's earlier history
      ['s1', 'gone', T - 5 * H, 0], // a stored zero before `from`: history starts here
      ['s1', 'gone', T - 4 * H, 8], // before `from`: not read
      ['s1', 'signup', T - 3 * H, 9],
      ['s1', 'view', T, 120],
      ['s1', 'view', T + H, 0], // a stored zero reads as an absent hour
      ['s1', 'view', T + 2 * H, 1_234_567],
      ['s1', 'view', T + 5 * H, 4], // at `to`: outside
      ['s1', 'signup', T + 4 * H, 2],
      ['s1', 'Signup Completed', T + H, 31],
      ['s2', 'view', T + H, 77], // another site
    ]);

    const series = await loadSiteSeries(env.DB, {
      siteId: 's1',
      from: T,
      recentFrom: T,
      to: T + 5 * H,
      fields: [],
    });

    expect([...series.volumes]).toEqual([
      ['Signup Completed', new Map([[T + H, 31]])],
      ['signup', new Map([[T + 4 * H, 2]])],
      [
        'view',
        new Map([
          [T, 120],
          [T + 2 * H, 1_234_567],
        ]),
      ],
    ]);
    expect(series.historyStart).toBe(T - 5 * H);
  });

  it('reads no volumes and no history start for a site with none stored', async () => {
    await store([['s3', 'view', T, 4]]);
    const series = await loadSiteSeries(env.DB, {
      siteId: 's4',
      from: T - 24 * H,
      recentFrom: T - 24 * H,
      to: T + 24 * H,
      fields: [],
    });
    expect(series.volumes.size).toBe(0);
    expect(series.historyStart).toBeNull();
  });
});
