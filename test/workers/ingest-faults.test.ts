/**
 * Faults after the beacon arrives: D1 failing before or after its write of refused events (503,
 * then a retry that counts everything exactly once), the site object failing (the batch is
 * recorded as pending with its events and the cron's reconciler completes it, or, when that
 * record cannot be written either, a 503 and the client's retry), and the deferred-apply switch.
 */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import { reconcilePending, RECONCILE_AFTER_MS } from '../../src/ingest/reconcile';
import { fetchWithFaults } from './faults';
import { ADMIN, beacon, counts, report, seedSite, settle, track } from './helpers';

const T = (seconds: number) => new Date(Date.now() - 60_000 + seconds * 1000).toISOString();

async function storedCount(siteId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM events WHERE site_id = ?')
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

async function pendingBatches(siteId: string): Promise<number> {
  const res = await SELF.fetch(`https://goalstep.test/admin/sites/${siteId}/pending`, {
    headers: ADMIN,
  });
  return ((await res.json()) as { pendingBatches: number }).pendingBatches;
}

const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

describe('D1 failing on the beacon path', () => {
  // D1 is written on the beacon path only for refused events (and a pending record): a batch
  // with one refused event shows what its failure does to the valid ones.
  const withRefused = (device: string, prefix: string) => ({
    batch: [
      track('view', { anonymousId: device }, `${prefix}-m1`, T(0)),
      track('cart', { anonymousId: device }, `${prefix}-m2`, T(1)),
      { type: 'track', anonymousId: device, messageId: `${prefix}-bad` },
    ],
  });

  it('answers a retryable 503 and stores nothing when the write fails', async () => {
    const site = await seedSite('fault-before', ['view', 'cart']);
    const body = withRefused('fb1', 'fb');
    const failed = await fetchWithFaults(beacon(site, body), { failBatchesBefore: 1 });
    expect(failed.status).toBe(503);
    expect(failed.headers.get('Retry-After')).toBe('5');
    expect(await failed.json()).toMatchObject({ code: 'storage_unavailable' });
    await settle(site);
    expect(await storedCount(site.siteId)).toBe(0);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);

    const retried = await fetchWithFaults(beacon(site, body), {});
    expect(await retried.json()).toMatchObject({ accepted: 2, duplicates: 0 });
    await settle(site);
    expect(await storedCount(site.siteId)).toBe(2);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
  });

  it('counts a batch once when D1 wrote its refused events, timed out, was retried', async () => {
    const site = await seedSite('fault-after', ['view', 'cart']);
    const body = withRefused('fa1', 'fa');
    const failed = await fetchWithFaults(beacon(site, body), { failBatchesAfter: 1 });
    expect(failed.status).toBe(503);
    // The refused event is filed; the valid ones never reached the object.
    const retried = await fetchWithFaults(beacon(site, body), {});
    expect(retried.status).toBe(200);
    expect(await retried.json()).toMatchObject({ accepted: 2, duplicates: 0 });
    await settle(site);
    expect(await storedCount(site.siteId)).toBe(2);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    // Filed once across the two attempts (src/ingest/refused-store.ts).
    const refused = await env.DB.prepare(
      'SELECT COUNT(*) AS n FROM rejected_events WHERE site_id = ?',
    )
      .bind(site.siteId)
      .first<{ n: number }>();
    expect(refused?.n).toBe(1);
  });
});

describe('the site object failing', () => {
  it('records the batch as pending until the reconciler applies it, counted once', async () => {
    const site = await seedSite('fault-apply', ['view', 'cart']);
    const body = {
      batch: [
        track('view', { anonymousId: 'rc1' }, 'rc-m1', T(0)),
        track('cart', { anonymousId: 'rc1' }, 'rc-m2', T(1)),
        track('view', { anonymousId: 'rc2' }, 'rc-m3', T(2)),
      ],
    };

    const res = await fetchWithFaults(beacon(site, body), { failObject: true });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 3 });
    expect(await pendingBatches(site.siteId)).toBe(1);
    // Nothing reached the progress rows yet.
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);

    // A young batch may still be in flight: the reconciler leaves it alone.
    await reconcilePending(env, Date.now());
    expect(await pendingBatches(site.siteId)).toBe(1);
    expect(await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000)).toBeGreaterThan(0);
    expect(await pendingBatches(site.siteId)).toBe(0);
    // rc1 viewed then added to cart; rc2 only viewed.
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);

    // Running it again finds nothing and changes nothing.
    await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);
  });
});

describe('the site object and then D1 failing', () => {
  it('answers 503 when neither the object nor a pending record took the events', async () => {
    const site = await seedSite('fault-both', ['view', 'cart']);
    const body = {
      batch: [
        track('view', { anonymousId: 'fb2' }, 'fb2-m1', T(0)),
        track('cart', { anonymousId: 'fb2' }, 'fb2-m2', T(1)),
      ],
    };
    // The object call fails; the pending record's write (the request's only D1 write) fails.
    const plan = { failBatchesBefore: 1, failObject: true };
    const failed = await fetchWithFaults(beacon(site, body), plan);
    expect(failed.status).toBe(503);
    expect(await failed.json()).toMatchObject({ code: 'storage_unavailable' });
    expect(await pendingBatches(site.siteId)).toBe(0);
    expect(await storedCount(site.siteId)).toBe(0);

    // The client's retry hands the events to the object, new there.
    const retried = await fetchWithFaults(beacon(site, body), {});
    expect(await retried.json()).toMatchObject({ accepted: 2, duplicates: 0 });
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    expect(await storedCount(site.siteId)).toBe(2);
  });
});

describe('deferred apply (DEFER_APPLY=1, the load-shedding switch)', () => {
  it('answers after the D1 write, leaves the batch to the reconciler, counted once', async () => {
    const site = await seedSite('defer-apply', ['view', 'cart']);
    const body = {
      batch: [
        track('view', { anonymousId: 'da1' }, 'da-m1', T(0)),
        track('cart', { anonymousId: 'da1' }, 'da-m2', T(1)),
      ],
    };
    const ctx = createExecutionContext();
    const res = await worker.fetch(beacon(site, body), { ...env, DEFER_APPLY: '1' }, ctx);
    await waitOnExecutionContext(ctx);
    expect(await res.json()).toMatchObject({ accepted: 2 });
    expect(await pendingBatches(site.siteId)).toBe(1);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([0, 0]);

    await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000);
    expect(await pendingBatches(site.siteId)).toBe(0);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
  });

  it('hands several pending batches to the object in one reconciler run, each once', async () => {
    const site = await seedSite('defer-many', ['view', 'cart']);
    // Person k views; persons 0 and 2 also add to cart, in a later batch of their own.
    const bodies = [
      [track('view', { anonymousId: 'dm0' }, 'dm-1', T(0))],
      [track('view', { anonymousId: 'dm1' }, 'dm-2', T(1))],
      [track('view', { anonymousId: 'dm2' }, 'dm-3', T(2))],
      [
        track('cart', { anonymousId: 'dm0' }, 'dm-4', T(3)),
        track('cart', { anonymousId: 'dm2' }, 'dm-5', T(4)),
      ],
    ];
    for (const batch of bodies) {
      const ctx = createExecutionContext();
      await worker.fetch(beacon(site, { batch }), { ...env, DEFER_APPLY: '1' }, ctx);
      await waitOnExecutionContext(ctx);
    }
    expect(await pendingBatches(site.siteId)).toBe(4);
    const applied = await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000);
    expect(applied).toBe(4);
    expect(await pendingBatches(site.siteId)).toBe(0);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([3, 2]);
  });
});
