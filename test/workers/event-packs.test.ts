/**
 * D1's packed events (`event_packs`, migration 0016): each write cycle of the site object writes
 * one row per hour of event time holding the events new to it, and reads by event time see every
 * event once, through retries, an erasure and a re-send, and the retention purge; the expected
 * rows are worked out by hand from the events sent.
 */
import { env, SELF } from 'cloudflare:test';
import { loadSiteSeries } from '../../src/alerts/series-store';
import { eventsByTime, mirrorStatements, TEXT_PACK_HOURS } from '../../src/ingest/event-packs';
import { purgeExpired } from '../../src/ingest/retention';
import { ADMIN, importBatch, seedSite, settle, track } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 3, 7, 10); // an hour's start
const iso = (ms: number) => new Date(ms).toISOString();

/** The site's message ids with event time in [from, to), read through the index, sorted. */
async function idsBetween(siteId: string, from: number, to: number): Promise<string[]> {
  const { results } = await env.DB.prepare(
    `SELECT message_id FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events`,
  )
    .bind(siteId, from, to)
    .all<{ message_id: string }>();
  return results.map((r) => r.message_id).sort();
}

/** The site's packs as [hour offset from T in hours, ids sorted], by hour and received time. */
async function indexRows(siteId: string): Promise<Array<[number, string[]]>> {
  const { results } = await env.DB.prepare(
    `SELECT hour, (SELECT json_group_array(j.value ->> 0) FROM json_each(events) j) AS ids
     FROM event_packs WHERE site_id = ? ORDER BY hour, received_at, ids`,
  )
    .bind(siteId)
    .all<{ hour: number; ids: string }>();
  return results.map((r) => [(r.hour - T) / H, (JSON.parse(r.ids) as string[]).sort()]);
}

describe('event_packs', () => {
  it('reads each stored event once by event time, at the bounds of hours and ranges', async () => {
    const site = await seedSite('hours-read', ['view', 'buy']);
    const first = [
      track('view', { anonymousId: 'd1' }, 'r1', iso(T)), // an hour's first millisecond
      track('view', { anonymousId: 'd1' }, 'r2', iso(T + H - 1)), // its last
      track('buy', { anonymousId: 'd1' }, 'r3', iso(T + H)), // the next hour's first
    ];
    expect((await importBatch(site, first)).status).toBe(200);
    await settle(site);
    // A retry of the request with one new event: only r4 is new.
    const retry = [...first, track('view', { anonymousId: 'd2' }, 'r4', iso(T + 2 * H + 1))];
    expect(await (await importBatch(site, retry)).json()).toMatchObject({
      accepted: 1,
      duplicates: 3,
    });
    await settle(site);
    // Two write cycles, three hours: the first packs r1, r2 (hour 0) and r3 (hour 1), the second
    // r4 (hour 2) alone: the object copies only what is new to it.
    expect(await indexRows('hours-read')).toEqual([
      [0, ['r1', 'r2']],
      [1, ['r3']],
      [2, ['r4']],
    ]);
    expect(await idsBetween('hours-read', T, T + 3 * H)).toEqual(['r1', 'r2', 'r3', 'r4']);
    // [from, to) to the millisecond, inside an hour's row.
    expect(await idsBetween('hours-read', T + 1, T + H)).toEqual(['r2']);
    expect(await idsBetween('hours-read', T, T + H - 1)).toEqual(['r1']);
    expect(await idsBetween('hours-read', T + H - 1, T + 2 * H + 1)).toEqual(['r2', 'r3']);
    expect(await idsBetween('hours-read', T - H, T)).toEqual([]);

    // The cron's accepted series counts them once per hour: 2, 1, 1.
    const series = await loadSiteSeries(env.DB, {
      siteId: 'hours-read',
      from: T,
      recentFrom: T,
      to: T + 3 * H,
      fields: [{ event: 'view', field: 'properties.plan' }],
    });
    expect([-1, 0, 1, 2, 3].map((h) => series.accepted.get(T + h * H) ?? 0)).toEqual([
      0, 2, 1, 1, 0,
    ]);
    // Views only, none with the field: n per hour, present 0.
    const views = series.fields.get('view\nproperties.plan');
    expect([...(views ?? [])].map(([hour, c]) => [(hour - T) / H, c.n, c.present])).toEqual([
      [0, 2, 0],
      [2, 1, 0],
    ]);
  });

  it('forgets an erased event, and counts it once when it is sent again', async () => {
    const site = await seedSite('hours-erase', ['view']);
    await importBatch(site, [
      track('view', { userId: 'zed' }, 'z1', iso(T + 5)),
      track('view', { anonymousId: 'other' }, 'o1', iso(T + 6)),
    ]);
    await settle(site);
    const erased = await SELF.fetch('https://goalstep.test/admin/sites/hours-erase/people/zed', {
      method: 'DELETE',
      headers: ADMIN,
    });
    expect(erased.status).toBe(200);
    // The erased event leaves its pack; the other event stays.
    expect(await indexRows('hours-erase')).toEqual([[0, ['o1']]]);
    expect(await idsBetween('hours-erase', T, T + H)).toEqual(['o1']);

    // Sent again (a client's retry after the erasure): new to the object, copied and read once.
    await importBatch(site, [track('view', { userId: 'zed' }, 'z1', iso(T + 5))]);
    await settle(site);
    expect(await idsBetween('hours-erase', T, T + H)).toEqual(['o1', 'z1']);
  });

  it('purges the packs of hours before the cutoff, and the older events of its hour', async () => {
    const site = await seedSite('hours-purge', ['view']);
    await importBatch(site, [
      track('view', { anonymousId: 'p' }, 'p1', iso(T + 10 * 60_000)), // hour 0
      track('view', { anonymousId: 'p' }, 'p2', iso(T + H + 5 * 60_000)), // hour 1, before
      track('view', { anonymousId: 'p' }, 'p3', iso(T + H + 30 * 60_000)), // hour 1, after
    ]);
    await settle(site);
    await env.DB.prepare("UPDATE sites SET retention_days = 1 WHERE id = 'hours-purge'").run();
    // Cutoff at hour 1 + 15 min: p1 and p2 go; hour 0's pack goes, hour 1's keeps p3.
    await purgeExpired(env.DB, T + H + 15 * 60_000 + 86_400_000);
    const { results } = await env.DB.prepare(
      "SELECT message_id FROM events WHERE site_id = 'hours-purge'",
    ).all<{ message_id: string }>();
    expect(results.map((r) => r.message_id)).toEqual(['p3']);
    expect(await indexRows('hours-purge')).toEqual([[1, ['p3']]]);
    expect(await idsBetween('hours-purge', T, T + 2 * H)).toEqual(['p3']);
  });

  it('keeps one message id from two devices as two events, a retry once', async () => {
    const site = await seedSite('packs-devices', ['view']);
    const from = (device: string) => track('view', { anonymousId: device }, 'same', iso(T + 9));
    // One request per device, then a retry of the first: 1 + 1 new, then a duplicate.
    const answers = [];
    for (const body of [[from('phone')], [from('laptop')], [from('phone')]]) {
      answers.push(await (await importBatch(site, body)).json());
      await settle(site);
    }
    expect(answers).toMatchObject([
      { accepted: 1, duplicates: 0 },
      { accepted: 1, duplicates: 0 },
      { accepted: 0, duplicates: 1 },
    ]);
    // Two cycles copied one event each; the retry was no new event.
    expect(await indexRows('packs-devices')).toEqual([
      [0, ['same']],
      [0, ['same']],
    ]);
    const { results } = await env.DB.prepare(
      `SELECT anonymous_id FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events
       ORDER BY anonymous_id`,
    )
      .bind('packs-devices', T, T + H)
      .all<{ anonymous_id: string }>();
    expect(results.map((r) => r.anonymous_id)).toEqual(['laptop', 'phone']);
    const view = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM events WHERE site_id = 'packs-devices'",
    ).first<{ n: number }>();
    expect(view?.n).toBe(2);
    // The phone's export lists its event once, though two packs hold it.
    const exported = await SELF.fetch(
      'https://goalstep.test/admin/sites/packs-devices/people/phone',
      { headers: ADMIN },
    );
    const body = (await exported.json()) as { events: Array<{ anonymous_id: string }> };
    expect(body.events.map((e) => e.anonymous_id)).toEqual(['phone']);
  });
});

describe('mirror packs', () => {
  // Live traffic (a copy of a few hours: its texts grouped by the object) and a copy of more
  // hours than that (an import: grouped by D1).
  it.each([
    { copy: 'of four hours', extra: [] },
    { copy: 'of more hours than TEXT_PACK_HOURS', extra: [T + 48 * H, T + 72 * H + 1] },
  ])('packs a copy $copy by the hour of each entry, and stores them as taken', async (c) => {
    // Entries at both sides of hour bounds, an hour apart and a day apart, in no order; two
    // chunks' worth of characters in one hour (a pack holds at most PACK_CHARS of entries).
    const big = 'x'.repeat(250_000);
    const times = [T + H - 1, T, T + H, T + 2 * H - 1, T - 1, T + 24 * H, T + 5, T + 6, T + 7];
    times.push(...c.extra);
    const hours = new Set(times.map((ts) => Math.floor(ts / H)));
    expect(hours.size > TEXT_PACK_HOURS).toBe(c.extra.length > 0);
    const site = `mirror-packs-${c.extra.length}`;
    const events = times.map((ts, i) => ({
      raw: JSON.stringify([
        `mp-${i}`,
        'track',
        'view',
        'a',
        null,
        null,
        ts,
        null,
        null,
        null,
        i >= 6 && i <= 8 ? { pad: big } : {},
      ]),
      at: 1_000 + i,
      ts,
    }));
    await env.DB.batch(mirrorStatements(env.DB, site, events));
    // Each entry's pack hour, as SQLite computes it from the entry's own event time.
    const { results } = await env.DB.prepare(
      `SELECT COUNT(*) AS entries, SUM(h.hour <> ((j.value ->> 6) / ${H}) * ${H}) AS misplaced,
         COUNT(DISTINCT h.hour || ' ' || h.batch_id) AS packs, SUM(json_valid(h.events)) AS valid
       FROM event_packs h, json_each(h.events) j WHERE h.site_id = ?`,
    )
      .bind(site)
      .all();
    // Hours T-1h, T, T+1h, T+24h (and one pack for each extra hour); T's five entries (three of
    // 250,000 characters) in two packs.
    const n = times.length;
    expect(results).toEqual([{ entries: n, misplaced: 0, packs: 5 + c.extra.length, valid: n }]);
    const texts = await env.DB.prepare(
      `SELECT j.value AS entry, h.received_at AS at FROM event_packs h, json_each(h.events) j
       WHERE h.site_id = ? ORDER BY j.value ->> 0`,
    )
      .bind(site)
      .all<{ entry: string; at: number }>();
    // Entries as sent, in the order of their ids.
    expect(texts.results.map((r) => r.entry)).toEqual(
      events.map((e) => e.raw).sort((a, b) => (JSON.parse(a)[0] < JSON.parse(b)[0] ? -1 : 1)),
    );
  });
});
