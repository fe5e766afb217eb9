#!/usr/bin/env node
/**
 * `node scripts/bench/override-stall.mjs [--state <dir>] [--rounds 5]`: how long one ingest takes
 * to be applied by the site's Durable Object while an override view (`mode=strict`, computed by
 * that object from stored events) runs over the Puffy week, next to the same ingest with the
 * object idle. Two figures per probe, as the client sees them: `ackMs`, the import's answer,
 * and `appliedMs`, until `/pending` (polled every 50 ms) shows the batch applied (the
 * object deletes an applied batch's record, so D1 keeps no stamp of it). With `--state` the
 * replayed week is kept in that directory and reused by the next run (to compare two versions
 * of the code on the same data). Prints one JSON line.
 */
import { performance } from 'node:perf_hooks';
import { reportUrl } from '../lib/stack.mjs';
import { option, probeImport, sleep, withPuffyStack } from './puffy-stack.mjs';

const rounds = Number(option('--rounds', '5'));
const adminToken = 'adm_stall_token_000000000000001';
const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
const run = Date.now();

/** Imports one probe event and waits until the site object has applied its batch; ms. */
const probe = (base, n) => probeImport(base, adminToken, `stall-probe-${run}-${n}`);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

await withPuffyStack({ adminToken, tmpPrefix: 'goalstep-stall-' }, async ({ base }) => {
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
  const summary = (values) => ({
    median: Math.round(median(values)),
    all: values.map((v) => Math.round(v)),
  });
  const figures = (probes) => ({
    ackMs: summary(probes.map((p) => p.ackMs)),
    appliedMs: summary(probes.map((p) => p.appliedMs)),
  });
  console.log(
    JSON.stringify({
      idle: figures(idle),
      duringView: figures(during),
      viewMs: summary(views),
    }),
  );
});
