#!/usr/bin/env node
/**
 * `node scripts/bench/rebuild-stall.mjs [--state <dir>] [--rounds 3]`: what a goal change costs
 * the rest of the site on the Puffy week. Each round saves a new version of the demo goal (its
 * window changes) and, while its progress is rebuilt, asks for the report and imports one event.
 * Per round: `putMs` (the PUT's answer), `reportMs` and what the report said (`version`,
 * `rebuilding`), the import's `ackMs` and `appliedMs` (until the status endpoint, polled every
 * 50 ms, shows it applied), and `rebuildMs` (until `readyVersion` is the new version, polled
 * every 100 ms). With `--state` the replayed week is kept and reused. Prints one JSON line.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { replay } from '../lib/replay-core.mjs';
import {
  freePort,
  readDemo,
  repoRoot,
  reportUrl,
  startStack,
  waitForSettled,
} from '../lib/stack.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const rounds = Number(option('--rounds', '3'));
const keep = option('--state', null);
const persistTo = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'goalstep-rebuild-'));
const adminToken = 'adm_rebuild_token_00000000000001';
const demo = readDemo();
const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const run = Date.now();

const stack = await startStack({
  port: await freePort(18_500, 500),
  persistTo,
  vars: { ADMIN_TOKEN: adminToken },
});
try {
  const base = stack.baseUrl;
  const site = `${base}/admin/sites/${demo.siteId}`;
  const marker = join(persistTo, 'puffy-week-replayed');
  if (!existsSync(marker)) {
    const dir = resolve(repoRoot, '..', 'shared', 'data', 'puffy');
    await replay({ dir, url: base, adminToken, siteId: demo.siteId });
    await waitForSettled(base, adminToken, { timeoutMs: 600_000 });
    writeFileSync(marker, new Date().toISOString());
  }
  const versions = async () =>
    (await fetch(`${site}/goals/${demo.goal.id}/versions`, { headers: admin })).json();

  const results = [];
  for (let i = 0; i < rounds; i += 1) {
    const started = performance.now();
    const window = `${8 + i + (run % 50)}d`;
    const put = await fetch(`${site}/goals/${demo.goal.id}`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ ...demo.goal, window, note: `rebuild bench ${run} ${i}` }),
    });
    if (!put.ok) throw new Error(`PUT → ${put.status} ${await put.text()}`);
    const { version } = await put.json();
    const putMs = performance.now() - started;

    const reportStarted = performance.now();
    const report = await (
      await fetch(reportUrl(base, { from: '2025-02-23', to: '2025-03-02', format: 'json' }), {
        headers: { ...admin, 'cache-control': 'no-cache' },
      })
    ).json();
    const reportMs = performance.now() - reportStarted;

    const importStarted = performance.now();
    const res = await fetch(`${base}/v1/import?site=${demo.siteId}`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({
        batch: [
          {
            type: 'track',
            event: 'page_viewed',
            anonymousId: `rebuild-probe-${run}-${i}`,
            messageId: `rebuild-probe-${run}-${i}`,
            timestamp: '2025-02-26T12:00:00Z',
          },
        ],
      }),
    });
    if (!res.ok) throw new Error(`import → ${res.status}`);
    const ackMs = performance.now() - importStarted;
    for (;;) {
      const status = await (await fetch(`${site}/status`, { headers: admin })).json();
      if (status.pendingBatches === 0) break;
      await sleep(50);
    }
    const appliedMs = performance.now() - importStarted;
    while ((await versions()).readyVersion !== version) await sleep(100);
    const rebuildMs = performance.now() - started;
    results.push({
      version,
      putMs: Math.round(putMs),
      reportMs: Math.round(reportMs),
      reportShowed: { version: report.version, rebuilding: report.rebuilding },
      ackMs: Math.round(ackMs),
      appliedMs: Math.round(appliedMs),
      rebuildMs: Math.round(rebuildMs),
    });
  }
  console.log(JSON.stringify({ rounds: results }));
} finally {
  await stack.stop();
  if (!keep) rmSync(persistTo, { recursive: true, force: true });
}
