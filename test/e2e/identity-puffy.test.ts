/**
 * Identity on a real `wrangler dev` stack: the Puffy week replayed, goalstep's own identity
 * counts compared with the independent DuckDB oracle (`stitchStats`), and the merge latency
 * measured (identify sent → report reflects it, report cache bypassed by an admin).
 *
 *   npx vitest run --project e2e test/e2e/identity-puffy.test.ts
 *
 * prints both sets of numbers (docs/IDENTITY.md quotes them).
 */
import { stitchStats } from '../../scripts/lib/oracle-core.mjs';
import { replay } from '../../scripts/lib/replay-core.mjs';
import { fetchReport } from '../../scripts/lib/stack.mjs';
import { useTestStack } from './test-stack';
import { puffyTestDir } from '../../scripts/lib/puffy.mjs';

const DATA_DIR = puffyTestDir();
const RANGE = { from: '2025-02-23', to: '2025-03-02' };

const stack = useTestStack('identity');

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${stack().baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${stack().adminToken}`,
      'content-type': 'application/json',
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

const counts = (report: { steps: Array<{ count: number }> }) => report.steps.map((s) => s.count);

describe('identity on the Puffy week and merge latency', () => {
  it('merges the browser ids the oracle merges, into as many people', async () => {
    const summary = await replay({
      dir: DATA_DIR,
      url: stack().baseUrl,
      adminToken: stack().adminToken,
      siteId: 'demo',
      batchSize: 100,
      concurrency: 4,
    });
    expect(summary.settled).toBe(true);

    const goalstep = await call('GET', '/admin/sites/demo/identity');
    const oracle = await stitchStats({
      dir: DATA_DIR,
      from: `${RANGE.from}T00:00:00.000Z`,
      to: `${RANGE.to}T00:00:00.000Z`,
    });
    const report = await fetchReport(stack().baseUrl, RANGE, stack().adminToken);
    // The numbers the note quotes; console is fine in a Node-side test.
    console.info(
      JSON.stringify({
        goalstep,
        oracle: {
          ...oracle,
          stitched: counts(oracle.stitched),
          unstitched: counts(oracle.unstitched),
        },
        report: counts(report),
      }),
    );

    expect(goalstep.users).toBe(oracle.users);
    expect(goalstep.devices).toBe(oracle.browserIds);
    expect(goalstep.linkedDevices).toBe(oracle.linkedBrowserIds);
    expect(goalstep.peopleWithDevices).toBe(oracle.linkedUsers);
    expect(goalstep.people).toBe(oracle.persons.stitched);
    expect(counts(report)).toEqual(counts(oracle.stitched));
  });

  it('reflects an identify in the report within seconds (cache bypassed)', async () => {
    const site = 'latency';
    const writeKey = 'wk_latency_e2e_key_000000000001';
    const shareToken = 'sh_latency_e2e_share_0000000001';
    await call('PUT', `/admin/sites/${site}`, { name: site, writeKey });
    await call('PUT', `/admin/sites/${site}/goals/buy`, {
      name: 'Buy',
      window: '1d',
      steps: [{ event: 'lat_view' }, { event: 'lat_buy' }],
    });
    await call('POST', `/admin/sites/${site}/shares`, { token: shareToken });
    const beacon = (path: string, body: unknown) =>
      fetch(`${stack().baseUrl}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${btoa(`${writeKey}:`)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      });
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const reportNow = async () => {
      const res = await fetch(
        `${stack().baseUrl}/r/${shareToken}/buy?from=${today}&to=${tomorrow}&format=json`,
        { headers: { authorization: `Bearer ${stack().adminToken}`, 'cache-control': 'no-cache' } },
      );
      return counts((await res.json()) as { steps: Array<{ count: number }> });
    };

    const latencies: number[] = [];
    for (let n = 1; n <= 10; n += 1) {
      // A phone views anonymously; a laptop, logged in, buys. Two people until the phone logs in.
      const now = Date.now();
      await beacon('/v1/track', {
        event: 'lat_view',
        anonymousId: `phone-${n}`,
        timestamp: new Date(now - 2000).toISOString(),
      });
      await beacon('/v1/track', {
        event: 'lat_buy',
        userId: `buyer-${n}`,
        anonymousId: `laptop-${n}`,
        timestamp: new Date(now - 1000).toISOString(),
      });
      const deadline = Date.now() + 30_000;
      while ((await reportNow())[0] !== n && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));

      const sent = Date.now();
      const res = await beacon('/v1/identify', { anonymousId: `phone-${n}`, userId: `buyer-${n}` });
      expect(res.status).toBe(200);
      for (;;) {
        const [entered, bought] = await reportNow();
        if (entered === n && bought === n) break;
        if (Date.now() - sent > 30_000)
          throw new Error('the merge did not reach the report in 30 s');
        await new Promise((r) => setTimeout(r, 10));
      }
      latencies.push(Date.now() - sent);
    }
    latencies.sort((a, b) => a - b);
    console.info(
      JSON.stringify({
        mergeLatencyMs: {
          min: latencies[0],
          median: latencies[5],
          max: latencies[9],
          all: latencies,
        },
      }),
    );
    expect(latencies[9]).toBeLessThan(5_000);
  });
});
