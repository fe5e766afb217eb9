#!/usr/bin/env node
/**
 * `node scripts/bench/override-stall.mjs [--state <dir>] [--rounds 5]`: how long one ingest takes
 * to be applied by the site's Durable Object while an override view (`mode=strict`, computed by
 * that object from stored events) runs over the Puffy week, next to the same ingest with the
 * object idle. Three figures per probe: `ackMs`, the import's answer as the client sees it;
 * `appliedMs`, until the status endpoint (polled every 50 ms) shows the batch applied; and
 * `stampedMs`, the batch's `applied_at - received_at` in D1. Locally the Worker and the object
 * share one workerd thread, so a blocked object also delays the Worker's own stamp: the client
 * figures are the honest ones. With `--state` the replayed week is kept in that directory and
 * reused by the next run (to compare two versions of the code on the same data). Prints one JSON
 * line.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot, reportUrl } from '../lib/stack.mjs';
import { option, probeImport, sleep, withPuffyStack } from './puffy-stack.mjs';

const rounds = Number(option('--rounds', '5'));
const adminToken = 'adm_stall_token_000000000000001';
const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
const run = Date.now();

/** `applied_at - received_at` of every probe batch of this run (ms), by probe name. */
function appliedLatencies(persistTo) {
  const wrangler = join(repoRoot, 'node_modules', 'wrangler', 'bin', 'wrangler.js');
  const command =
    'SELECT message_ids AS ids, applied_at - received_at AS ms FROM batches ' +
    `WHERE message_ids LIKE '%stall-probe-${run}-%'`;
  const out = execFileSync(
    process.execPath,
    [wrangler, 'd1', 'execute', 'goalstep', '--local', '--persist-to', persistTo, '--json'].concat([
      '--command',
      command,
    ]),
    { cwd: repoRoot, env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } },
  );
  const rows = JSON.parse(out.toString())[0].results;
  const probeName = (ids) => JSON.parse(ids)[0].replace(/^stall-probe-\d+-/, '');
  return new Map(rows.map((row) => [probeName(row.ids), row.ms]));
}

/** Imports one probe event and waits until the site object has applied its batch; ms. */
const probe = (base, n) => probeImport(base, admin, `stall-probe-${run}-${n}`);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

await withPuffyStack({ adminToken, tmpPrefix: 'goalstep-stall-' }, async ({ base, persistTo }) => {
  const idle = [];
  for (let i = 0; i < rounds; i += 1) idle.push(await probe(base, `idle-${i}`));

  const during = [];
  const views = [];
  for (let i = 0; i < rounds; i += 1) {
    const viewStarted = performance.now();
    // A different window per round: each one is a new walk, not an answer kept in memory.
    const view = fetch(
      reportUrl(base, {
        from: '2025-02-23',
        to: '2025-03-02',
        mode: 'strict',
        window: `${7 + i}d`,
        format: 'json',
      }),
      { headers: { ...admin, 'cache-control': 'no-cache' } },
    ).then(async (res) => {
      if (!res.ok) throw new Error(`view → ${res.status}`);
      await res.arrayBuffer();
      return performance.now() - viewStarted;
    });
    // Let the view reach the object and start its walk before the ingest arrives.
    await sleep(500);
    during.push(await probe(base, `during-${i}`));
    views.push(await view);
  }
  const latencies = appliedLatencies(persistTo);
  const pick = (kind) =>
    [...latencies].filter(([name]) => name.startsWith(kind)).map(([, ms]) => ms);
  const summary = (values) => ({
    median: Math.round(median(values)),
    all: values.map((v) => Math.round(v)),
  });
  const figures = (probes, kind) => ({
    ackMs: summary(probes.map((p) => p.ackMs)),
    appliedMs: summary(probes.map((p) => p.appliedMs)),
    stampedMs: summary(pick(kind)),
  });
  console.log(
    JSON.stringify({
      idle: figures(idle, 'idle'),
      duringView: figures(during, 'during'),
      viewMs: summary(views),
    }),
  );
});
