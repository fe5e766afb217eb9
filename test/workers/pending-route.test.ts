/**
 * `GET /admin/sites/:siteId/pending` (session 12): the pending count of `/status` without its
 * count of every stored event. Its access is `/status`'s, and it agrees with `/status` in every
 * state a batch can be pending in.
 */
import {
  createExecutionContext,
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import worker from '../../src/index';
import { reconcilePending, RECONCILE_AFTER_MS } from '../../src/ingest/reconcile';
import { fetchWithFaults } from './faults';
import { ADMIN, beacon, ingest, seedSite, settle, stateOf, track } from './helpers';

const BASE = 'https://goalstep.test';
const T = (seconds: number) => new Date(Date.now() - 60_000 + seconds * 1000).toISOString();

const get = (path: string, headers: Record<string, string> = ADMIN) =>
  SELF.fetch(`${BASE}${path}`, { headers });

/** `/status`'s and `/pending`'s pending counts of a site, read one after the other. */
async function both(siteId: string): Promise<{ status: number; pending: number }> {
  const status = (await (await get(`/admin/sites/${siteId}/status`)).json()) as {
    pendingBatches: number;
  };
  const pending = (await (await get(`/admin/sites/${siteId}/pending`)).json()) as {
    pendingBatches: number;
  };
  return { status: status.pendingBatches, pending: pending.pendingBatches };
}

async function namedToken(name: string, siteId?: string): Promise<string> {
  const res = await SELF.fetch(`${BASE}/admin/tokens`, {
    method: 'POST',
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, siteId }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

describe('access to /pending', () => {
  it('answers as /status does for every token and site id', async () => {
    await seedSite('pend-a', ['a', 'b']);
    await seedSite('pend-b', ['a', 'b']);
    const scoped = await namedToken('pend-scoped', 'pend-a');
    const revoked = await namedToken('pend-revoked');
    const del = await SELF.fetch(`${BASE}/admin/tokens/pend-revoked`, {
      method: 'DELETE',
      headers: ADMIN,
    });
    expect(del.ok).toBe(true);
    const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

    const cases: Array<[string, string, Record<string, string>]> = [
      ['root, own site', 'pend-a', ADMIN],
      ['no token', 'pend-a', {}],
      ['not a bearer', 'pend-a', { Authorization: `Basic ${btoa('x:')}` }],
      ['unknown token', 'pend-a', bearer('nope-nope-nope-nope')],
      ['revoked token', 'pend-a', bearer(revoked)],
      ['scoped, its site', 'pend-a', bearer(scoped)],
      ['scoped, another site', 'pend-b', bearer(scoped)],
      ['root, unknown site', 'pend-none', ADMIN],
      ['bad site id', '-bad', ADMIN],
      ['site id too long', 'x'.repeat(64), ADMIN],
      ['bad site id, no token', '-bad', {}],
    ];
    for (const [label, siteId, headers] of cases) {
      const status = await get(`/admin/sites/${siteId}/status`, headers);
      const pending = await get(`/admin/sites/${siteId}/pending`, headers);
      const statusBody = (await status.json()) as Record<string, unknown>;
      const pendingBody = (await pending.json()) as Record<string, unknown>;
      expect(pending.status, label).toBe(status.status);
      if (status.ok) {
        expect(pendingBody, label).toEqual({ pendingBatches: statusBody.pendingBatches });
      } else {
        expect(pendingBody, label).toEqual(statusBody);
      }
    }
  });
});

describe('/pending agrees with /status', () => {
  it('while the object holds a taken request, and after its write', async () => {
    const site = await seedSite('pend-taken', ['a', 'b']);
    // The suite's pause is 250 ms: both read well inside it.
    const res = await ingest(site, { batch: [track('a', { anonymousId: 'd1' }, 'tk-1', T(0))] });
    expect(res.status).toBe(200);
    expect(await both(site.siteId)).toEqual({ status: 1, pending: 1 });
    await runDurableObjectAlarm(stateOf(site.siteId));
    expect(await both(site.siteId)).toEqual({ status: 0, pending: 0 });
  });

  it('with batches recorded in D1 for the reconciler (object unreachable)', async () => {
    const site = await seedSite('pend-record', ['a', 'b']);
    for (const n of [1, 2, 3]) {
      const res = await fetchWithFaults(
        beacon(site, { batch: [track('a', { anonymousId: `d${n}` }, `rec-${n}`, T(0))] }),
        { failObject: true },
      );
      expect(res.status).toBe(200);
    }
    expect(await both(site.siteId)).toEqual({ status: 3, pending: 3 });
    await reconcilePending(env, Date.now() + RECONCILE_AFTER_MS + 1_000);
    await settle(site);
    expect(await both(site.siteId)).toEqual({ status: 0, pending: 0 });
  });

  it('with DEFER_APPLY=1 batch records', async () => {
    const site = await seedSite('pend-defer', ['a', 'b']);
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      beacon(site, { batch: [track('a', { anonymousId: 'd1' }, 'def-1', T(0))] }),
      { ...env, DEFER_APPLY: '1' },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(200);
    expect(await both(site.siteId)).toEqual({ status: 1, pending: 1 });
  });

  it('while a lost write cycle waits for its recovery', async () => {
    const site = await seedSite('pend-lost', ['a', 'b']);
    const stub = stateOf(site.siteId);
    await runInDurableObject(stub, async (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('site', ?)", site.siteId);
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    await evictDurableObject(stub);
    // A new instance finds the alarm set: it counts the cycle as one.
    expect(await both(site.siteId)).toEqual({ status: 1, pending: 1 });
    await runDurableObjectAlarm(stub);
    expect(await both(site.siteId)).toEqual({ status: 0, pending: 0 });
  });
});
