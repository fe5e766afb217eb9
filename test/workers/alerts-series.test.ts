/**
 * The series the checks read from D1: stored step volumes come back hour by hour as they were
 * written, within the range asked for, whatever shape the read takes on the way.
 */
import { env } from 'cloudflare:test';
import { loadSiteSeries } from '../../src/alerts/series-store';
import { counting, packEvents } from './helpers';

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

/** Raw events of `site`: [event, ts, context] each (properties empty), in one request's packs. */
async function track(
  site: string,
  rows: ReadonlyArray<readonly [event: string, ts: number, context: unknown]>,
) {
  const id = ([event, ts]: readonly [string, number, unknown], i: number) =>
    `${site}-${event}-${ts}-${i}`;
  await env.DB.batch([
    packEvents(
      site,
      rows[0]?.[1] ?? 0,
      rows.map((row, i) => ({
        messageId: id(row, i),
        event: row[0],
        ts: row[1],
        context: row[2] as Record<string, unknown>,
      })),
    ),
  ]);
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

  it('counts each watched field per event and hour, by JSON type, present or not', async () => {
    const ref = (referrer: unknown) => ({ page: { referrer } });
    await track('f1', [
      ['view', T + 10, ref('https://a.example/')],
      ['view', T + 20, ref('https://b.example/')],
      ['view', T + 30, ref(null)], // an explicit null: absent
      ['view', T + H + 5, ref(7)],
      ['view', T + H + 6, {}], // missing: absent
      ['buy', T + 40, { page: { referrer: 'https://a.example/' }, campaign: { source: 'x' } }],
      ['buy', T + H + 7, { campaign: { source: 3 } }],
      ['other', T + 50, ref('https://c.example/')], // watched by no step
      ['view', T - H, ref('x')], // before the range
      ['view', T + 3 * H, ref('x')], // at its end
    ]);
    await track('f2', [['view', T + 60, ref('x')]]); // another site

    const series = await loadSiteSeries(env.DB, {
      siteId: 'f1',
      from: T,
      recentFrom: T,
      to: T + 3 * H,
      fields: [
        { event: 'view', field: 'context.page.referrer' },
        { event: 'buy', field: 'context.page.referrer' },
        { event: 'buy', field: 'context.campaign.source' },
        { event: 'gone', field: 'context.page.referrer' },
      ],
    });

    expect([...series.fields]).toEqual([
      [
        'view\ncontext.page.referrer',
        new Map([
          [T, { n: 3, present: 2, types: { text: 2 } }],
          [T + H, { n: 2, present: 1, types: { integer: 1 } }],
        ]),
      ],
      [
        'buy\ncontext.page.referrer',
        new Map([
          [T, { n: 1, present: 1, types: { text: 1 } }],
          [T + H, { n: 1, present: 0, types: {} }],
        ]),
      ],
      [
        'buy\ncontext.campaign.source',
        new Map([
          [T, { n: 1, present: 1, types: { text: 1 } }],
          [T + H, { n: 1, present: 1, types: { integer: 1 } }],
        ]),
      ],
      ['gone\ncontext.page.referrer', new Map()],
    ]);
  });

  it('reads the events of the range once per field, however many steps watch it', async () => {
    // 20 steps with 10 events each in the range: 200 events, read once for the one field.
    const names = Array.from({ length: 20 }, (_, i) => `step_${i}`);
    await track(
      'f3',
      names.flatMap((event, i) =>
        Array.from({ length: 10 }, (_, j) => [event, T + j * 700_000 + i * 1000, {}] as const),
      ),
    );
    const rowsRead = async (watching: string[]) => {
      const { db, read } = counting(env.DB);
      const fields = watching.map((event) => ({ event, field: 'context.page.referrer' }));
      await loadSiteSeries(db, { siteId: 'f3', from: T, recentFrom: T, to: T + 2 * H, fields });
      return read();
    };
    // 18 more watchers add their names and result groups, not another pass over the 200.
    const two = await rowsRead(names.slice(0, 2));
    expect(await rowsRead(names)).toBeLessThan(two + 200);
  });
});
