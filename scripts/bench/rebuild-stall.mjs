#!/usr/bin/env node
/**
 * `node scripts/bench/rebuild-stall.mjs [--state <dir>] [--rounds 3]`: what a goal change costs
 * the rest of the site on the Puffy week. Each round saves a new version of the demo goal (its
 * window changes) and, while its progress is rebuilt, asks for the report and imports one event.
 * Per round: `putMs` (the PUT's answer), `reportMs` and what the report said (`version`,
 * `rebuilding`), the import's `ackMs` and `appliedMs` (until `/pending`, polled every 50 ms,
 * shows it applied), and `rebuildMs` (until `readyVersion` is the new version, polled
 * every 100 ms). With `--state` the replayed week is kept and reused. Prints one JSON line.
 */
import { performance } from 'node:perf_hooks';
import { readDemo, reportUrl } from '../lib/stack.mjs';
import { option, probeImport, sleep, withPuffyStack } from './puffy-stack.mjs';

const rounds = Number(option('--rounds', '3'));
const adminToken = 'adm_rebuild_token_00000000000001';
const demo = readDemo();
const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
const run = Date.now();

await withPuffyStack({ adminToken, tmpPrefix: 'goalstep-rebuild-' }, async ({ base }) => {
  const site = `${base}/admin/sites/${demo.siteId}`;
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

    const { ackMs, appliedMs } = await probeImport(base, adminToken, `rebuild-probe-${run}-${i}`);
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
});
