/**
 * The hour a pack is stored under (src/ingest/event-packs.ts, from the session-11 review): a
 * copy of at most TEXT_PACK_HOURS hours is grouped by the object and stored as its entries'
 * texts, a longer one by D1 (`packStatement`). Expected: the same entries in the same hours as
 * D1's grouping, whatever the event time (hour bounds, before 1970); a person's reads find them
 * there; and ingest never stores a time outside 2000–2099, however `sentAt` corrects it.
 */
import { env, SELF } from 'cloudflare:test';
import {
  chunkJson,
  mirrorStatements,
  packStatement,
  personEventsStatement,
} from '../../src/ingest/event-packs';
import { ADMIN, seedSite, track } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 3, 7, 10);

/** Every copy grouped in D1 (the only path before session 11). */
const oldMirror = (site: string, events: ReadonlyArray<{ raw: string; at: number }>) =>
  chunkJson(events.map((e) => e.raw)).map(({ json, from, to }) =>
    packStatement(env.DB, {
      siteId: site,
      receivedAt: Math.max(...events.slice(from, to).map((e) => e.at)),
      entries: json,
    }),
  );

/** Each entry of a site's packs with its pack's hour as stored (quote: type and value). */
async function placed(site: string): Promise<string[]> {
  const { results } = await env.DB.prepare(
    `SELECT quote(h.hour) || ' ' || typeof(h.hour) || ' ' || j.value AS r
     FROM event_packs h, json_each(h.events) j WHERE h.site_id = ? ORDER BY 1`,
  )
    .bind(site)
    .all<{ r: string }>();
  return results.map((r) => r.r);
}

describe('pack hours', () => {
  it.each([
    { hours: 4, extra: [] as number[] },
    { hours: 5, extra: [T + 9 * H] },
  ])('places entries of a copy of $hours hours as D1 grouping did', async (c) => {
    // Hour bounds on both sides of 0 (SQLite's integer division goes toward zero), and texts
    // that JSON escapes; the raw texts as the object's SQLite writes them (`->`).
    const times = [-1, -3_599_999, -3_600_000, -3_600_001, 0, 3_599_999, T, T + H - 1, T + 5 * H];
    times.push(...c.extra);
    const entries = times.map((ts, i) => [
      `m${i}`,
      'track',
      'e"\\\u2028😀\u0001',
      'a',
      null,
      null,
      ts,
      null,
      { n: 1e21, s: '\ud800' },
      null,
      { nested: { deep: [1, 2.5, null] } },
    ]);
    const { results } = await env.DB.prepare(
      'SELECT value -> 0 AS raw FROM json_each(?) ORDER BY key',
    )
      .bind(JSON.stringify(entries.map((e) => [e])))
      .all<{ raw: string }>();
    const events = results.map((r, i) => ({ raw: r.raw, at: 5_000 + i, ts: times[i] as number }));
    const sites = { old: `r11-packs-old-${c.hours}`, new: `r11-packs-new-${c.hours}` };
    await env.DB.batch(oldMirror(sites.old, events));
    await env.DB.batch(mirrorStatements(env.DB, sites.new, events));
    const got = await placed(sites.new);
    expect(got).toHaveLength(times.length);
    expect(got).toEqual(await placed(sites.old));
    // Every pack valid JSON, and each received_at at least the `at` of every entry it holds.
    const check = await env.DB.prepare(
      `SELECT SUM(NOT json_valid(h.events)) AS invalid,
         SUM(h.received_at < (SELECT MAX(5000 + CAST(substr(j.value ->> 0, 2) AS INTEGER))
           FROM json_each(h.events) j)) AS early
       FROM event_packs h WHERE h.site_id = ?`,
    )
      .bind(sites.new)
      .first();
    expect(check).toEqual({ invalid: 0, early: 0 });
  });

  it("finds a person's events before 1970 in the hour their pack is stored under", async () => {
    // Stored by an older version (ingest refuses such times now): -1 h - 1 ms goes under the
    // hour -1 h by SQLite's division toward zero, where flooring looked under -2 h.
    const site = 'pack-hours-pre1970';
    const ts = -3_600_001;
    const { results } = await env.DB.prepare('SELECT value -> 0 AS raw FROM json_each(?)')
      .bind(
        JSON.stringify([
          [['pre-m1', 'track', 'view', 'dev', null, null, ts, null, null, null, {}]],
        ]),
      )
      .all<{ raw: string }>();
    const raw = results[0]?.raw as string;
    await env.DB.batch(mirrorStatements(env.DB, site, [{ raw, at: 1, ts }]));
    const found = await personEventsStatement(env.DB, site, {
      events: [{ device: 'dev', messageId: 'pre-m1', ts }],
    }).all<{ message_id: string }>();
    expect(found.results.map((r) => r.message_id)).toEqual(['pre-m1']);
  });

  it('refuses an import whose sentAt would move an event time before 2000', async () => {
    const site = await seedSite('pack-hours-sentat', ['view', 'cart']);
    const res = await SELF.fetch(`https://goalstep.test/v1/import?site=${site.siteId}`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        sentAt: '2099-12-31T00:00:00.000Z',
        batch: [track('view', { anonymousId: 'old-dev' }, 'pre-m1', '2000-01-01T00:30:00.000Z')],
      }),
    });
    const body = (await res.json()) as { accepted?: number; rejected: Array<{ code: string }> };
    expect(res.status).toBe(400);
    expect(body.rejected.map((r) => r.code)).toEqual(['invalid_timestamp']);
  });
});
