/**
 * The main path inside the Workers runtime: beacons in through the real Worker, real local D1
 * and the site's Durable Object, a report out. Expected numbers are worked out by hand from
 * docs/METRICS.md.
 */
import { env } from 'cloudflare:test';
import { counts, importBatch, ingest, report, seedSite, settle, track } from './helpers';

const STEPS = ['view', 'cart', 'checkout'];
const T = (seconds: number) => new Date(Date.UTC(2025, 2, 3, 10, 0, seconds)).toISOString();

describe('ingest to report', () => {
  it('counts a batch in the report once the site has applied it', async () => {
    const site = await seedSite('flow', STEPS);
    const res = await importBatch(site, [
      track('view', { anonymousId: 'a1' }, 'm1', T(0)),
      track('cart', { anonymousId: 'a1' }, 'm2', T(30)),
      track('view', { anonymousId: 'a2' }, 'm3', T(5)),
    ]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      accepted: 3,
      duplicates: 0,
      rejected: [],
      filtered: [],
      warnings: [],
    });
    await settle(site);

    const r = await report(site, '2025-03-03', '2025-03-04');
    // a1 reached view and cart 30 s apart; a2 only viewed.
    expect(counts(r)).toEqual([2, 1, 0]);
    expect(r.steps[1]?.conversionFromPrevious).toBe(0.5);
    expect(r.steps[1]?.medianSecondsFromPrevious).toBe(30);
  });

  it('stores a retried batch once and says it was a duplicate', async () => {
    const site = await seedSite('retry', STEPS);
    const batch = [
      track('view', { anonymousId: 'r1' }, 'retry-1', T(0)),
      track('cart', { anonymousId: 'r1' }, 'retry-2', T(1)),
    ];
    expect(await (await importBatch(site, batch)).json()).toMatchObject({ accepted: 2 });
    const second = await importBatch(site, batch);
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ accepted: 0, duplicates: 2 });
    await settle(site);

    expect(counts(await report(site, '2025-03-03', '2025-03-04'))).toEqual([1, 1, 0]);
  });

  it('rejects an invalid event by index and keeps its batch-mates (C06)', async () => {
    const site = await seedSite('partial', ['pricing_viewed', 'plan_selected']);
    const now = Date.now();
    const batch = {
      batch: [
        track(
          'pricing_viewed',
          { anonymousId: 'anon-c06' },
          'c06-m1',
          new Date(now - 2000).toISOString(),
        ),
        track('', { anonymousId: 'anon-c06' }, 'c06-m2', new Date(now - 1000).toISOString()),
        track('plan_selected', { anonymousId: 'anon-c06' }, 'c06-m3', new Date(now).toISOString()),
      ],
    };
    const first = await ingest(site, batch);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({
      accepted: 2,
      duplicates: 0,
      rejected: [
        {
          index: 1,
          code: 'missing_event_name',
          path: 'event',
          message: 'track events need a non-empty event name',
        },
      ],
      filtered: [],
      warnings: [],
    });
    const retry = await ingest(site, batch);
    expect(await retry.json()).toMatchObject({ accepted: 0, duplicates: 2 });
    await settle(site);

    const day = new Date(now).toISOString().slice(0, 10);
    const next = new Date(now + 86_400_000).toISOString().slice(0, 10);
    expect(counts(await report(site, day, next))).toEqual([1, 1]);
  });

  it('counts an anonymous phone and a logged-in laptop as one person', async () => {
    const site = await seedSite('merge', STEPS);
    await importBatch(site, [
      // The phone browses anonymously, then the laptop (already logged in) buys.
      track('view', { anonymousId: 'phone' }, 'p1', T(0)),
      track('cart', { anonymousId: 'phone' }, 'p2', T(60)),
      track('checkout', { anonymousId: 'laptop', userId: 'ada' }, 'l1', T(600)),
    ]);
    await settle(site);
    const before = await report(site, '2025-03-03', '2025-03-04');
    // Not yet stitched: the phone's person stops at cart; the laptop never entered.
    expect(counts(before)).toEqual([1, 1, 0]);

    // The phone logs in as the same user: its earlier events now count for ada.
    await importBatch(site, [
      { type: 'identify', anonymousId: 'phone', userId: 'ada', messageId: 'p3', timestamp: T(900) },
    ]);
    await settle(site);
    const after = await report(site, '2025-03-03', '2025-03-04');
    expect(counts(after)).toEqual([1, 1, 1]);
    expect(after.steps[2]?.medianSecondsFromPrevious).toBe(540);
  });
});

describe('request-level limits (review findings)', () => {
  it('refuses a batch of more than 1,000 events with 413 and stores nothing', async () => {
    const site = await seedSite('flood', ['view']);
    const batch = Array.from({ length: 1001 }, () => 0);
    const res = await ingest(site, { batch });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'too_many_events' });
  });

  it('deduplicates a retry of an event with neither message id nor timestamp', async () => {
    const site = await seedSite('no-ids', ['page_viewed']);
    const body = { event: 'page_viewed', anonymousId: 'dup-a' };
    const first = await ingest(site, body, '/v1/track');
    const retry = await ingest(site, { ...body, sentAt: new Date().toISOString() }, '/v1/track');
    expect(await first.json()).toMatchObject({ accepted: 1 });
    expect(await retry.json()).toMatchObject({ accepted: 0, duplicates: 1 });
  });

  it('deduplicates a retry of an event that has a timestamp but no message id', async () => {
    const site = await seedSite('retry-no-id', ['page_viewed']);
    const body = {
      event: 'page_viewed',
      anonymousId: 'dup-b',
      timestamp: new Date().toISOString(),
    };
    await ingest(site, body, '/v1/track');
    const retry = await ingest(site, { ...body, sentAt: new Date().toISOString() }, '/v1/track');
    expect(await retry.json()).toMatchObject({ accepted: 0, duplicates: 1 });
  });
});

describe('unreadable bodies (review finding)', () => {
  it('answers 400 and keeps a body that is not JSON under the site of its write key', async () => {
    const site = await seedSite('unreadable', ['view']);
    const res = await ingest(site, '{"batch":[{"type":"track",', '/v1/batch', {
      'Content-Type': 'text/plain',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'invalid_json' });
    const kept = await env.DB.prepare(
      "SELECT code, raw FROM rejected_events WHERE site_id = 'unreadable'",
    ).all<{ code: string; raw: string }>();
    expect(kept.results).toEqual([
      { code: 'invalid_json', raw: JSON.stringify('{"batch":[{"type":"track",') },
    ]);
  });
});
