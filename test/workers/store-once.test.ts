/**
 * Each event stored once, in the site object, and copied to D1's packs by its write cycle
 * (src/ingest/event-packs.ts): retries whose event time moved, one message id from two devices,
 * big bodies, erasure and imports. Adopted from a review that tried to make the packs count an
 * event twice, miss one or keep an erased one; expected values are worked out by hand from the
 * documented rules (docs/API.md, docs/INGEST.md, docs/ARCHITECTURE.md).
 */
import {
  createExecutionContext,
  env,
  evictDurableObject,
  waitOnExecutionContext,
} from 'cloudflare:test';
import { SELF } from 'cloudflare:test';
import { recordStepVolumes } from '../../src/alerts/step-volumes';
import { eventsByTime } from '../../src/ingest/event-packs';
import { reconcilePending, RECONCILE_AFTER_MS } from '../../src/ingest/reconcile';
import worker from '../../src/index';
import {
  ADMIN,
  counts,
  identify,
  importBatch,
  packedCopies,
  report,
  seedSite,
  settle,
  track,
} from './helpers';
import type { TestSite } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 3, 7, 10); // an hour's start
const iso = (ms: number) => new Date(ms).toISOString();
/** D1's documented cap on a string, BLOB or row (developers.cloudflare.com/d1/platform/limits). */
const D1_MAX_VALUE_BYTES = 2_000_000;

/**
 * Sends a live batch (`/v1/batch`) as the Worker receives it at `at` (the clock override). An
 * event without `timestamp` or `sentAt` takes its receipt time (docs/API.md, event time), as a
 * hand-written server client's does: its retry a minute later carries a later time.
 */
async function sendAt(
  site: TestSite,
  batch: unknown[],
  at: number,
  vars: Record<string, string> = {},
): Promise<Response> {
  const request = new Request('https://goalstep.test/v1/batch', {
    method: 'POST',
    headers: {
      Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify({ batch }),
  });
  const ctx = createExecutionContext();
  const response = await worker.fetch(request, { ...env, GOALSTEP_NOW: iso(at), ...vars }, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** A track event with no time of its own. */
const untimed = (ids: { anonymousId?: string; userId?: string }, messageId: string) => ({
  type: 'track',
  event: 'view',
  ...ids,
  messageId,
});

const erase = (site: TestSite, id: string) =>
  SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/people/${encodeURIComponent(id)}`, {
    method: 'DELETE',
    headers: ADMIN,
  });

async function viewCount(siteId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM events WHERE site_id = ?')
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe('a retry whose event time crossed an hour', () => {
  it("is counted once in the cron's step volumes", async () => {
    const site = await seedSite('s7-volumes', ['view']);
    const body = [untimed({ anonymousId: 'd1' }, 'm1')];
    // Sent 30 s before the hour; the client missed the 200 and retried a minute later.
    expect(await (await sendAt(site, body, T + H - 30_000)).json()).toMatchObject({
      accepted: 1,
      duplicates: 0,
    });
    expect(await (await sendAt(site, body, T + H + 30_000)).json()).toMatchObject({
      accepted: 0,
      duplicates: 1,
    });
    await settle(site);

    // The cron at hour 3 + 10 min recounts hours 0-3; at hour 4 + 10 min, hours 1-4.
    await recordStepVolumes(env.DB, T + 3 * H + 600_000);
    await recordStepVolumes(env.DB, T + 4 * H + 600_000);

    // One event, whose time is its first send's (hour 0: the `events` view says so too).
    const first = await env.DB.prepare(
      "SELECT ts FROM events WHERE site_id = 's7-volumes' AND message_id = 'm1'",
    ).first<{ ts: number }>();
    expect(first?.ts).toBe(T + H - 30_000);
    const { results } = await env.DB.prepare(
      "SELECT hour, count FROM step_volumes WHERE site_id = 's7-volumes' ORDER BY hour",
    ).all<{ hour: number; count: number }>();
    expect(results.map((r) => [(r.hour - T) / H, r.count])).toEqual([[0, 1]]);
  });

  it('is read by event time in the hour of its first copy only', async () => {
    const site = await seedSite('s7-range', ['view']);
    const body = [untimed({ anonymousId: 'd1' }, 'm1')];
    await sendAt(site, body, T + H - 30_000);
    await sendAt(site, body, T + H + 30_000);
    await settle(site);
    const { results } = await env.DB.prepare(
      `SELECT message_id FROM ${eventsByTime('h.site_id = ?1', '?2', '?3')} AS events`,
    )
      .bind('s7-range', T + H, T + 2 * H)
      .all<{ message_id: string }>();
    // m1 happened at hour 0 (its first copy, the view, the object): hour 1 holds nothing.
    expect(results).toEqual([]);
  });

  it("leaves no copy of an erased person's event in D1", async () => {
    const site = await seedSite('s7-erase', ['view']);
    const body = [untimed({ userId: 'zed' }, 'z1')];
    await sendAt(site, body, T + H - 30_000);
    await sendAt(site, body, T + H + 30_000);
    await settle(site);

    expect((await erase(site, 'zed')).status).toBe(200);

    // docs/INGEST.md: the erasure deletes the person's events in D1. zed sent one event (twice):
    // nothing of it may stay.
    const left = await env.DB.prepare(
      `SELECT COUNT(*) AS n FROM event_packs h CROSS JOIN json_each(h.events) j
       WHERE h.site_id = 's7-erase' AND j.value ->> 4 = 'zed'`,
    ).first<{ n: number }>();
    expect(left?.n).toBe(0);
    expect(await viewCount('s7-erase')).toBe(0);
  });
});

describe('one message id from two devices', () => {
  it('is two events within one request as across two (docs/API.md)', async () => {
    const site = await seedSite('s7-two-devices', ['view']);
    const body = [
      track('view', { anonymousId: 'phone' }, 'same', iso(T + 9)),
      track('view', { anonymousId: 'laptop' }, 'same', iso(T + 9)),
    ];
    expect(await (await importBatch(site, body)).json()).toMatchObject({
      accepted: 2,
      duplicates: 0,
    });
    await settle(site);
    expect(await viewCount('s7-two-devices')).toBe(2);
  });

  it("keeps each device's link when two identify calls share a message id", async () => {
    const site = await seedSite('s7-links', ['view']);
    await importBatch(site, [identify('phone', 'alice', 'same', iso(T))]);
    await settle(site);
    await importBatch(site, [identify('laptop', 'bob', 'same', iso(T + 60_000))]);
    await settle(site);

    // Two events (two devices), two links: phone-alice from T, laptop-bob from T + 1 min.
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName('s7-links'));
    const facts = await stub.guardFacts([], ['phone', 'laptop']);
    expect([...facts.links].sort((a, b) => a.anon.localeCompare(b.anon))).toEqual([
      { anon: 'laptop', user: 'bob', ts: T + 60_000 },
      { anon: 'phone', user: 'alice', ts: T },
    ]);

    // So pointing the laptop at carol later is a shared device (docs/API.md, device_shared).
    const third = await importBatch(site, [identify('laptop', 'carol', 'c3', iso(T + 120_000))]);
    const answer = (await third.json()) as { warnings: Array<{ code: string }> };
    expect(answer.warnings.map((w) => w.code)).toContain('device_shared');
  });

  it('counts a device linked by a shared message id for its user after an eviction', async () => {
    const site = await seedSite('s7-links-report', ['view', 'buy']);
    await importBatch(site, [identify('phone', 'alice', 'same', iso(T))]);
    await settle(site);
    await importBatch(site, [
      identify('laptop', 'bob', 'same', iso(T + 60_000)),
      track('view', { anonymousId: 'laptop' }, 'v1', iso(T + 120_000)),
      track('buy', { userId: 'bob' }, 'b1', iso(T + 180_000)),
    ]);
    await settle(site);
    const range = ['2025-04-07', '2025-04-08'] as const;
    // docs/IDENTITY.md: the laptop counts for bob from his identify on; bob viewed, then bought.
    expect(counts(await report(site, ...range))).toEqual([1, 1]);
    // The object's instance goes (a deploy, an eviction); the laptop views again.
    await evictDurableObject(env.SITE_STATE.get(env.SITE_STATE.idFromName('s7-links-report')));
    await importBatch(site, [track('view', { anonymousId: 'laptop' }, 'v2', iso(T + 240_000))]);
    await settle(site);
    // Nothing about the laptop changed: still one person who viewed, then bought.
    expect(counts(await report(site, ...range))).toEqual([1, 1]);
  });
});

describe('pack size', () => {
  it('stores a body within the 500 KB limit in values D1 accepts (at most 2 MB)', async () => {
    const site = await seedSite('s7-size', ['view']);
    // 1,000 small events sharing a batch context of 1.9 KB: Segment's batch-level context
    // applies to every event of the batch (at most 2,000,000 characters copied in all).
    const batch = Array.from({ length: 1000 }, (_, i) =>
      track('view', { anonymousId: 'd' }, `m${i}`, iso(T + i)),
    );
    const body = JSON.stringify({ batch, context: { campaign: { note: 'x'.repeat(1900) } } });
    expect(body.length).toBeLessThan(500 * 1024);
    const res = await SELF.fetch(`https://goalstep.test/v1/import?site=s7-size`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body,
    });
    expect(await res.json()).toMatchObject({ accepted: 1000 });
    await settle(site);
    const row = await env.DB.prepare(
      `SELECT MAX(length(CAST(events AS BLOB))) AS bytes, COUNT(*) AS packs,
         SUM(json_array_length(events)) AS n FROM event_packs WHERE site_id = 's7-size'`,
    ).first<{ bytes: number; packs: number; n: number }>();
    // Each event carries the 1.9 KB context: about 2 MB of entries, so more than one pack.
    expect(row?.bytes).toBeLessThanOrEqual(D1_MAX_VALUE_BYTES);
    expect(row?.packs).toBeGreaterThan(1);
    expect(row?.n).toBe(1000);
    expect(await viewCount('s7-size')).toBe(1000);
  });

  it('records such a body as pending in values D1 accepts, and applies every part', async () => {
    const site = await seedSite('s7-size-pending', ['view']);
    const batch = Array.from({ length: 1000 }, (_, i) =>
      track('view', { anonymousId: 'd' }, `p${i}`, iso(T + i)),
    );
    const body = JSON.stringify({ batch, context: { campaign: { note: 'x'.repeat(1900) } } });
    const request = new Request('https://goalstep.test/v1/batch', {
      method: 'POST',
      headers: {
        Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
        'Content-Type': 'application/json',
      },
      body,
    });
    const ctx = createExecutionContext();
    const deferred = { ...env, DEFER_APPLY: '1', GOALSTEP_NOW: iso(T + 2 * H) };
    const res = await worker.fetch(request, deferred, ctx);
    await waitOnExecutionContext(ctx);
    expect(await res.json()).toMatchObject({ accepted: 1000 });
    const records = await env.DB.prepare(
      `SELECT COUNT(*) AS n, MAX(length(CAST(events AS BLOB))) AS bytes,
         SUM(json_array_length(events)) AS events FROM batches WHERE site_id = 's7-size-pending'`,
    ).first<{ n: number; bytes: number; events: number }>();
    expect(records?.n).toBeGreaterThan(1);
    expect(records?.bytes).toBeLessThanOrEqual(D1_MAX_VALUE_BYTES);
    // Recorded in parts, one request: the status and `/pending` count one pending batch
    // (docs/API.md).
    for (const path of ['status', 'pending']) {
      const res = await SELF.fetch(`https://goalstep.test/admin/sites/s7-size-pending/${path}`, {
        headers: ADMIN,
      });
      expect(await res.json(), path).toMatchObject({ pendingBatches: 1 });
    }
    expect(records?.events).toBe(1000);
    await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000);
    await settle(site);
    expect(await viewCount('s7-size-pending')).toBe(1000);
    const left = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM batches WHERE site_id = 's7-size-pending'",
    ).first<{ n: number }>();
    expect(left?.n).toBe(0);
  });
});

describe("a write cycle's copy", () => {
  it('copies more events than one mirror batch takes (5,000), each once', async () => {
    const site = await seedSite('s7-many', ['view']);
    // Six requests of 1,000 within one flush pause: one cycle owes 6,000 copies.
    const sent = await Promise.all(
      Array.from({ length: 6 }, (_, r) =>
        importBatch(
          site,
          Array.from({ length: 1000 }, (_, i) =>
            track('view', { anonymousId: `d${r}-${i % 50}` }, `c${r}-${i}`, iso(T + i)),
          ),
        ),
      ),
    );
    for (const res of sent) expect(await res.json()).toMatchObject({ accepted: 1000 });
    await settle(site);
    expect(await viewCount('s7-many')).toBe(6000);
    expect(await packedCopies('s7-many')).toBe(6000);
  });
});

describe('a batch context copied into every event', () => {
  it('is refused (413) past 2,000,000 characters in all, and nothing is stored', async () => {
    const site = await seedSite('s7-context', ['view']);
    const batch = Array.from({ length: 1000 }, (_, i) =>
      track('view', { anonymousId: 'd' }, `x${i}`, iso(T + i)),
    );
    // A 12 KB context over 1,000 events would be 12 MB of copies; 144 KB of body.
    const body = JSON.stringify({ batch, context: { campaign: { note: 'x'.repeat(12_000) } } });
    const res = await SELF.fetch(`https://goalstep.test/v1/import?site=s7-context`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body,
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'batch_context_too_large' });
    // The same context over 100 events (1.2 M characters) is taken, live.
    const fewer = JSON.stringify({
      batch: batch.slice(0, 100),
      context: { campaign: { note: 'x'.repeat(12_000) } },
    });
    const ok = await SELF.fetch(`https://goalstep.test/v1/import?site=s7-context`, {
      method: 'POST',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: fewer,
    });
    expect(await ok.json()).toMatchObject({ accepted: 100, duplicates: 0 });
    await settle(site);
    expect(await viewCount('s7-context')).toBe(100);
    const pending = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM batches WHERE site_id = 's7-context'",
    ).first<{ n: number }>();
    expect(pending?.n).toBe(0);
  });
});
