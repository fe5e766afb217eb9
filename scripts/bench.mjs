#!/usr/bin/env node
/**
 * `npm run bench`: the end-to-end benchmark on this machine. Starts a fresh local stack, replays
 * the Puffy week through the import path, and measures ingest throughput, the lag until the
 * reports reflect every event, and report latency uncached and cached. Prints a Markdown table
 * for docs/BENCHMARKS.md and one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { replay } from './lib/replay-core.mjs';
import { freePort, readDemo, repoRoot, startStack, waitForSettled } from './lib/stack.mjs';

const dir = resolve(process.argv[2] ?? join(repoRoot, '..', 'shared', 'data', 'puffy'));
const adminToken = 'adm_bench_token_000000000000001';
const REPORT_RUNS = 20;

function percentile(sorted, p) {
  const rank = (sorted.length - 1) * p;
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

async function timeReport(url, headers) {
  const times = [];
  for (let i = 0; i < REPORT_RUNS; i += 1) {
    const start = performance.now();
    const res = await fetch(url, { headers });
    await res.text();
    if (!res.ok) throw new Error(`report answered ${res.status}`);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p90: percentile(times, 0.9) };
}

const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-bench-'));
const port = await freePort();
const stack = await startStack({ port, persistTo, vars: { ADMIN_TOKEN: adminToken } });
try {
  const demo = readDemo();
  const started = performance.now();
  const summary = await replay({
    dir,
    url: stack.baseUrl,
    adminToken,
    siteId: demo.siteId,
    batchSize: 100,
    concurrency: 4,
  });
  await waitForSettled(stack.baseUrl, adminToken);
  const settledSeconds = (performance.now() - started) / 1000;

  const reportPath = `${stack.baseUrl}/r/${demo.shareToken}/${demo.goal.id}` +
    `?from=${summary.from}&to=${summary.to}&format=json`;
  const uncached = await timeReport(reportPath, {
    Authorization: `Bearer ${adminToken}`,
    'Cache-Control': 'no-cache',
  });
  await fetch(reportPath).then((r) => r.text());
  const cached = await timeReport(reportPath, {});

  const result = {
    events: summary.sent,
    accepted: summary.accepted,
    ingestEventsPerSecond: Math.round(summary.eventsPerSecond),
    secondsUntilReportsReflectAll: Number(settledSeconds.toFixed(1)),
    processedEventsPerSecond: Math.round(summary.sent / settledSeconds),
    reportUncachedMs: { p50: +uncached.p50.toFixed(1), p90: +uncached.p90.toFixed(1) },
    reportCachedMs: { p50: +cached.p50.toFixed(1), p90: +cached.p90.toFixed(1) },
  };
  console.log('| measure | value |\n| --- | --- |');
  console.log(`| events replayed (batches of 100, 4 in flight) | ${result.events} |`);
  console.log(`| ingest, events/s while sending | ${result.ingestEventsPerSecond} |`);
  console.log(`| until reports reflect every event | ${result.secondsUntilReportsReflectAll} s |`);
  console.log(`| processed events/s (sent ÷ time to reflect) | ${result.processedEventsPerSecond} |`);
  console.log(`| report uncached, p50 / p90 | ${result.reportUncachedMs.p50} / ${result.reportUncachedMs.p90} ms |`);
  console.log(`| report cached, p50 / p90 | ${result.reportCachedMs.p50} / ${result.reportCachedMs.p90} ms |`);
  console.log(JSON.stringify(result));
} finally {
  await stack.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
