#!/usr/bin/env node
/**
 * `npm run bench [-- --only ingest,processing,replay,reports,merge,cost,cron] [--quick]
 * [--pause <ms>] [--shapes queue,server] [--data <dir>]`: goalstep measured on this machine
 * through the local stack, side by side with the floors underneath it. Prints Markdown tables
 * (for docs/BENCHMARKS.md) and a JSON line per section. `--pause` runs the stacks with another
 * flush pause (`FLUSH_PAUSE_MS`, 1 s by default); `--shapes` runs only the cost shapes whose
 * label holds one of the comma-separated texts; `--data` is the Puffy week's directory
 * (../shared/data/puffy by default).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { replay } from '../lib/replay-core.mjs';
import { freePort, readDemo, repoRoot, startStack, waitForPending } from '../lib/stack.mjs';
import {
  busiestThreadShare,
  measureCost,
  measureLoneEvents,
  PRICES,
  workerdThreadCpuMs,
} from './cost.mjs';
import { measureCron } from './cron.mjs';
import { loadTest, peakWorkerdMemory } from './load.mjs';
import { readPuffySlice } from './puffy-slice.mjs';
import { duckdbFunnel, loadPeople } from './report-sizes.mjs';
import { sqliteFloor } from './sqlite-floor.mjs';

const args = process.argv.slice(2);
const only = args.includes('--only') ? (args[args.indexOf('--only') + 1] ?? '').split(',') : null;
const SECTIONS = ['ingest', 'processing', 'replay', 'reports', 'merge', 'cost', 'cron'];
const unknown = (only ?? []).filter((section) => !SECTIONS.includes(section));
if (unknown.length > 0) {
  console.error(`unknown section ${unknown.join(', ')}; sections: ${SECTIONS.join(', ')}`);
  process.exit(2);
}
const quick = args.includes('--quick');
const pause = args.includes('--pause') ? args[args.indexOf('--pause') + 1] : undefined;
if (pause !== undefined && !/^\d+$/.test(pause)) {
  console.error('--pause takes a whole number of milliseconds');
  process.exit(2);
}
const wants = (section) => !only || only.includes(section);
const adminToken = 'adm_bench_token_000000000000001';
const demo = readDemo();
const writeKeyAuth = {
  authorization: `Basic ${Buffer.from(`${demo.writeKey}:`).toString('base64')}`,
};
const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
const fresh = { authorization: `Bearer ${adminToken}`, 'cache-control': 'no-cache' };
const results = {};
/** The option's value, or a clear stop when the option is given without one. */
function optionValue(name) {
  if (!args.includes(name)) return undefined;
  const value = args[args.indexOf(name) + 1];
  if (value === undefined || value.startsWith('--')) {
    console.error(`${name} needs a value`);
    process.exit(2);
  }
  return value;
}

// The Puffy week's CSV files: `--data <dir>`, by default ../shared/data/puffy next to the checkout.
const puffyDir = resolve(
  optionValue('--data') ?? resolve(repoRoot, '..', 'shared', 'data', 'puffy'),
);
if ((wants('replay') || wants('cost')) && !existsSync(puffyDir)) {
  console.error(`The Puffy data is not at ${puffyDir}: pass --data <directory of its CSV files>`);
  process.exit(2);
}

/** Peak workerd memory (MiB) of every stack run so far, in the order they stopped. */
const stackPeaks = [];
/** The highest peak of the stacks that stopped since `mark` (an index into stackPeaks). */
const peakSince = (mark) => Math.max(0, ...stackPeaks.slice(mark));

/** Runs `body` against a fresh stack (goalstep's, or another Worker's config) and stops it. */
async function withStack(options, body) {
  const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-bench-'));
  const vars = { ADMIN_TOKEN: adminToken, ...options.vars };
  if (pause !== undefined) vars.FLUSH_PAUSE_MS = pause;
  const stack = await startStack({
    port: await freePort(18_000, 1000),
    persistTo,
    ...options,
    vars,
  });
  try {
    return await body({ ...stack, persistTo });
  } finally {
    stackPeaks.push(peakWorkerdMemory(stack.pid));
    await stack.stop();
    rmSync(persistTo, { recursive: true, force: true });
  }
}

function table(title, header, rows) {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

const SHAPES = quick
  ? [
      { batchSize: 1, requests: 300 },
      { batchSize: 20, requests: 100 },
      { batchSize: 100, requests: 40 },
    ]
  : [
      { batchSize: 1, requests: 2000 },
      { batchSize: 20, requests: 1000 },
      // 60,000 events: about 3 s of the bare insert, the floor the processing runs are held to
      // (200 requests, 1 s, measured 18,400–21,300 ev/s on one machine in one afternoon).
      { batchSize: 100, requests: 600 },
    ];
const CONNECTIONS = 8;

/** The bare-insert Worker (the platform's floor) loaded with each of `shapes`, on a fresh stack. */
const bareInsert = (shapes) =>
  withStack(
    {
      configPath: join(repoRoot, 'scripts/bench/bare-worker/wrangler.toml'),
      seed: false,
      vars: undefined,
    },
    async ({ baseUrl, pid }) => {
      const rows = [];
      for (const shape of shapes)
        rows.push(await loadTest({ url: `${baseUrl}/`, connections: CONNECTIONS, ...shape }));
      return { rows, memory: peakWorkerdMemory(pid) };
    },
  );

if (wants('ingest')) {
  const bare = await bareInsert(SHAPES);
  // The whole path, and the beacon path alone (DEFER_APPLY=1: the site object's work after the
  // 2xx is left to the reconciler; locally that work shares the Worker's isolate and cores).
  const runGoalstep = (vars) =>
    withStack({ vars }, async ({ baseUrl, pid }) => {
      const rows = [];
      for (const shape of SHAPES) {
        rows.push(
          await loadTest({
            url: `${baseUrl}/v1/batch`,
            headers: writeKeyAuth,
            connections: CONNECTIONS,
            ...shape,
          }),
        );
      }
      if (!vars.DEFER_APPLY) await waitForPending(baseUrl, adminToken);
      return { rows, memory: peakWorkerdMemory(pid) };
    });
  const goalstep = await runGoalstep({ ADMIN_TOKEN: adminToken });
  const beacon = await runGoalstep({ ADMIN_TOKEN: adminToken, DEFER_APPLY: '1' });
  const floors = [];
  for (const { batchSize } of SHAPES) {
    floors.push(
      await sqliteFloor({
        migrationsDir: join(repoRoot, 'migrations'),
        batchSize,
        batches: Math.ceil(20_000 / batchSize),
      }),
    );
  }
  table(
    `Ingest: ${CONNECTIONS} connections, events/s and latency (ms)`,
    [
      'batch',
      'goalstep ev/s',
      'beacon only ev/s',
      'bare Worker ev/s',
      'SQLite ev/s',
      'goalstep ÷ bare',
      'beacon only ÷ bare',
      'goalstep ÷ SQLite',
      'goalstep p50 / p99',
      'beacon only p50 / p99',
      'bare p50 / p99',
      'non-2xx',
    ],
    SHAPES.map((shape, i) => {
      const g = goalstep.rows[i];
      const o = beacon.rows[i];
      const b = bare.rows[i];
      const f = floors[i];
      return [
        shape.batchSize,
        g.eventsPerSecond,
        o.eventsPerSecond,
        b.eventsPerSecond,
        f.eventsPerSecond,
        (g.eventsPerSecond / b.eventsPerSecond).toFixed(2),
        (o.eventsPerSecond / b.eventsPerSecond).toFixed(2),
        (g.eventsPerSecond / f.eventsPerSecond).toFixed(3),
        `${g.p50} / ${g.p99}`,
        `${o.p50} / ${o.p99}`,
        `${b.p50} / ${b.p99}`,
        g.non2xx + o.non2xx + b.non2xx,
      ];
    }),
  );
  console.log(
    `\nPeak workerd memory: goalstep ${goalstep.memory} MiB, bare Worker ${bare.memory} MiB.`,
  );
  results.ingest = { goalstep, beacon, bare, floors };
}

if (wants('processing')) {
  // The floor the processing rate is held to (a quarter of it, docs/BENCHMARKS.md): the bare
  // insert of 100-event batches, from this run's ingest section or measured here.
  const hundreds = SHAPES.at(-1);
  const floor =
    results.ingest?.bare.rows.at(-1)?.eventsPerSecond ??
    (await bareInsert([hundreds])).rows[0].eventsPerSecond;
  const rows = [];
  // A burst (150 batches) and sustained load (600 batches: the rate the object keeps up with,
  // and whether the lag grows).
  const runs = (quick ? [30, 120] : [150, 600]).flatMap((batches) =>
    [1, 10].map((eventsPerPerson) => ({ batches, eventsPerPerson })),
  );
  for (const { batches, eventsPerPerson } of runs) {
    rows.push(
      await withStack({}, async ({ baseUrl, pid }) => {
        const threadsBefore = workerdThreadCpuMs(pid);
        const started = performance.now();
        const load = await loadTest({
          url: `${baseUrl}/v1/batch`,
          headers: writeKeyAuth,
          connections: 4,
          batchSize: 100,
          requests: batches,
          eventsPerPerson,
        });
        const acked = performance.now();
        await waitForPending(baseUrl, adminToken, { timeoutMs: 600_000 });
        const settled = performance.now();
        const busiest = busiestThreadShare(
          threadsBefore,
          workerdThreadCpuMs(pid),
          settled - started,
        );
        return {
          eventsPerPerson,
          events: batches * 100,
          ingestEventsPerSecond: load.eventsPerSecond,
          processedEventsPerSecond: Math.round((batches * 100) / ((settled - started) / 1000)),
          ofBare: +((batches * 100) / ((settled - started) / 1000) / floor).toFixed(2),
          lagAfterLastAckSeconds: +((settled - acked) / 1000).toFixed(1),
          busiestThread: busiest,
          memory: peakWorkerdMemory(pid),
        };
      }),
    );
  }
  table(
    'Processing: until the progress rows reflect every event (batches of 100, 4 connections)',
    [
      'events per person',
      'events',
      'ingest ev/s',
      'processed ev/s',
      `÷ bare (${floor} ev/s, batches of 100; target ≥ 0.25)`,
      'lag after last 2xx (s)',
      'busiest workerd thread (share of the run)',
      'peak workerd MiB',
    ],
    rows.map((r) => [
      r.eventsPerPerson,
      r.events,
      r.ingestEventsPerSecond,
      r.processedEventsPerSecond,
      r.ofBare,
      r.lagAfterLastAckSeconds,
      r.busiestThread,
      r.memory,
    ]),
  );
  results.processing = { floor, rows };
}

if (wants('replay')) {
  const mark = stackPeaks.length;
  results.replay = await withStack({}, async ({ baseUrl }) => {
    const started = performance.now();
    const summary = await replay({
      dir: puffyDir,
      url: baseUrl,
      adminToken,
      siteId: demo.siteId,
      batchSize: 100,
      concurrency: 4,
    });
    await waitForPending(baseUrl, adminToken);
    return {
      events: summary.sent,
      eventsPerSecond: summary.eventsPerSecond,
      settledSeconds: +((performance.now() - started) / 1000).toFixed(1),
    };
  });
  results.replay.memory = peakSince(mark);
  const { events, eventsPerSecond, settledSeconds, memory } = results.replay;
  table(
    'Replay of the Puffy week (import path, batches of 100, 4 in flight)',
    ['events', 'events/s while sending', 'until reports reflect all (s)', 'peak workerd MiB'],
    [[events, eventsPerSecond, settledSeconds, memory]],
  );
}

/** Times `runs` GETs of a URL; resolves with p50 and p90 in ms. */
async function timeGets(url, headers, runs, status = 200) {
  const times = [];
  for (let i = 0; i < runs; i += 1) {
    const started = performance.now();
    const res = await fetch(url, { headers });
    await res.text();
    if (res.status !== status) throw new Error(`${url} answered ${res.status}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const at = (p) => +times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(1);
  return { p50: at(0.5), p90: at(0.9) };
}

if (wants('reports')) {
  const mark = stackPeaks.length;
  const sizes = args.includes('--sizes')
    ? args[args.indexOf('--sizes') + 1].split(',').map(Number)
    : quick
      ? [10_000, 100_000]
      : [10_000, 100_000, 1_000_000];
  // Every size answers from rollups (the default threshold would leave 10k to the per-person
  // path); `--per-person` measures that path instead, for comparison.
  const perPerson = args.includes('--per-person');
  const vars = { ADMIN_TOKEN: adminToken, ROLLUP_MIN_PEOPLE: perPerson ? '1000000000' : '0' };
  const logFile = process.env.BENCH_LOG;
  const rows = await withStack({ vars, logFile }, async ({ baseUrl, persistTo }) => {
    const out = [];
    for (const people of sizes) {
      const siteId = `size${people}`;
      const put = (path, body, method = 'PUT') =>
        fetch(`${baseUrl}${path}`, { method, headers: admin, body: JSON.stringify(body) });
      await put(`/admin/sites/${siteId}`, {
        name: siteId,
        writeKey: `wk_${siteId}_bench_key_0001`,
      });
      await put(`/admin/sites/${siteId}/goals/checkout`, {
        name: 'Checkout',
        window: '7d',
        steps: demo.goal.steps,
      });
      await put(
        `/admin/sites/${siteId}/shares`,
        { token: `sh_${siteId}_bench_share_0001` },
        'POST',
      );
      const { duck, loadSeconds, rollupSeconds, rollupRows } = await loadPeople({
        persistDir: persistTo,
        siteId,
        goalId: 'checkout',
        version: 1,
        people,
      });
      const url = `${baseUrl}/r/sh_${siteId}_bench_share_0001/checkout?from=2025-02-23&to=2025-03-03&format=json`;
      // Loading a million people takes minutes: the kept-alive socket may have been closed by
      // the server meanwhile, which fetch reports as a failure of the first request on it.
      let report;
      for (let attempt = 1; !report; attempt += 1) {
        try {
          report = await (await fetch(url, { headers: fresh })).json();
        } catch (error) {
          if (attempt >= 3) throw error;
        }
      }
      const duckdb = await duckdbFunnel(duck);
      const counts = report.steps.map((s) => s.count);
      const uncached = await timeGets(url, fresh, people >= 1_000_000 ? 5 : 10);
      await fetch(url).then((r) => r.text());
      const cached = await timeGets(url, {}, 20);
      // The stack's floor for any GET (a route that reads nothing), with the same client.
      const floor = await timeGets(`${baseUrl}/healthz`, {}, 20);
      // A report link whose share is unknown: the share check (one D1 read) and a 404, which
      // every report request makes before its cache is asked.
      const unknown = `${baseUrl}/r/sh_unknown_bench_share_0000/checkout?format=json`;
      const shareFloor = await timeGets(unknown, {}, 20, 404);
      out.push({
        people,
        source: report.source,
        rollupRows,
        rollupSeconds: +rollupSeconds.toFixed(1),
        counts,
        duckdbCounts: duckdb.counts,
        agree: JSON.stringify(counts) === JSON.stringify(duckdb.counts),
        uncached,
        cached,
        floor,
        shareFloor,
        duckdbMs: +duckdb.ms.toFixed(1),
        loadSeconds: +loadSeconds.toFixed(1),
      });
    }
    return out;
  });
  table(
    'Reports: the demo funnel over a week of generated people (ms)',
    [
      'people',
      'source',
      'uncached p50 / p90',
      'cached p50 / p90',
      'GET /healthz p50 / p90 (the floor)',
      'unknown share: its check alone',
      'DuckDB from raw events',
      'counts (goalstep = DuckDB?)',
      'rollup rows (build s)',
    ],
    rows.map((r) => [
      r.people.toLocaleString('en-US'),
      r.source,
      `${r.uncached.p50} / ${r.uncached.p90}`,
      `${r.cached.p50} / ${r.cached.p90}`,
      `${r.floor.p50} / ${r.floor.p90}`,
      `${r.shareFloor.p50} / ${r.shareFloor.p90}`,
      r.duckdbMs,
      `${r.counts.join('/')} (${r.agree ? 'yes' : `no: ${r.duckdbCounts.join('/')}`})`,
      `${r.rollupRows} (${r.rollupSeconds})`,
    ]),
  );
  results.reports = rows;
  results.reportsMemory = peakSince(mark);
  console.log(`\nPeak workerd memory over the report stack: ${results.reportsMemory} MiB.`);
}

if (wants('merge')) {
  const mark = stackPeaks.length;
  results.merge = await withStack({}, async ({ baseUrl }) => {
    const samples = [];
    for (let i = 0; i < (quick ? 3 : 10); i += 1) {
      const anon = `merge-anon-${i}`;
      const user = `merge-user-${i}`;
      const now = Date.now();
      const event = (type, fields, offset) => ({
        type,
        messageId: `merge-${i}-${type}-${offset}`,
        timestamp: new Date(now - 60_000 + offset).toISOString(),
        ...fields,
      });
      // The anonymous phone views and adds to cart; the logged-in laptop starts checkout.
      await fetch(`${baseUrl}/v1/batch`, {
        method: 'POST',
        headers: { ...writeKeyAuth, 'content-type': 'application/json' },
        body: JSON.stringify({
          batch: [
            event('track', { event: 'page_viewed', anonymousId: anon }, 0),
            event('track', { event: 'product_added_to_cart', anonymousId: anon }, 1000),
            event('track', { event: 'checkout_started', userId: user }, 2000),
          ],
        }),
      });
      await waitForPending(baseUrl, adminToken);
      const day = new Date(now).toISOString().slice(0, 10);
      const next = new Date(now + 86_400_000).toISOString().slice(0, 10);
      const url = `${baseUrl}/r/${demo.shareToken}/${demo.goal.id}?from=${day}&to=${next}&format=json`;
      const before = (await (await fetch(url, { headers: fresh })).json()).steps[2].count;
      const sent = performance.now();
      await fetch(`${baseUrl}/v1/identify`, {
        method: 'POST',
        headers: { ...writeKeyAuth, 'content-type': 'application/json' },
        body: JSON.stringify(event('identify', { anonymousId: anon, userId: user }, 3000)),
      });
      for (;;) {
        const count = (await (await fetch(url, { headers: fresh })).json()).steps[2].count;
        if (count > before) break;
        if (performance.now() - sent > 30_000) throw new Error('merge not visible after 30 s');
      }
      samples.push(performance.now() - sent);
    }
    samples.sort((a, b) => a - b);
    return {
      samples: samples.length,
      p50: +samples[Math.floor(samples.length / 2)].toFixed(1),
      max: +samples.at(-1).toFixed(1),
    };
  });
  results.merge.memory = peakSince(mark);
  table(
    'Merge latency: identify sent → report (cache bypassed) counts the merged person (ms)',
    ['samples', 'p50', 'max', 'peak workerd MiB'],
    [[results.merge.samples, results.merge.p50, results.merge.max, results.merge.memory]],
  );
}

if (wants('cost')) {
  const costMark = stackPeaks.length;
  const events = quick ? 600 : 3000;
  // The slow site's events (full run only): sent at 2 ev/s, and one at a time by kind.
  const SLOW_EVENTS = 300;
  const slice = await readPuffySlice(puffyDir, quick ? 1000 : 3000);
  const synthetic = (traffic, batchSize) => ({
    label: `synthetic (a person's events adjacent, full speed): ${traffic}`,
    batchSize,
    eventsPerPerson: 2,
    events,
  });
  const real = (traffic, batchSize, rate, first) => {
    const part = first ? ` (first ${first})` : '';
    const label = `Puffy slice${part} at ${rate.toLocaleString('en')} ev/s: ${traffic}`;
    return { label, batchSize, rate, first };
  };
  const shapes = [
    synthetic('browser, 1 per request', 1),
    synthetic('browser queue, 5 per request', 5),
    synthetic('server, 100 per request', 100),
    // A slow site, each event alone in its flush: the full run only (300 events take 150 s).
    ...(quick ? [] : [real('browser, 1 per request', 1, 2, SLOW_EVENTS)]),
    real('browser, 1 per request', 1, 20),
    real('browser, 1 per request', 1, 200),
    real('browser queue, 5 per request', 5, 200),
    real('server, 100 per request', 100, 2000),
  ];
  // `--shapes queue,server` runs only the shapes whose label holds one of the texts.
  const picked = optionValue('--shapes')?.split(',') ?? null;
  results.cost = { slice: slice.summary, shapes: [] };
  for (const shape of shapes) {
    if (picked && !picked.some((word) => shape.label.includes(word))) continue;
    results.cost.shapes.push(
      await withStack(
        { vars: { ADMIN_TOKEN: adminToken, METER: '1', ROLLUP_MIN_PEOPLE: '0' } },
        async ({ baseUrl, pid }) =>
          measureCost({ baseUrl, pid, admin, writeKeyAuth, siteId: demo.siteId, shape, slice }),
      ),
    );
  }
  if (!quick && !picked) {
    results.cost.lone = await withStack(
      { vars: { ADMIN_TOKEN: adminToken, METER: '1' } },
      async ({ baseUrl }) =>
        measureLoneEvents({
          baseUrl,
          admin,
          writeKeyAuth,
          siteId: demo.siteId,
          messages: slice.messages.slice(0, SLOW_EVENTS),
          steps: demo.goal.steps.map((step) => step.event),
        }),
    );
  }
  const rows = results.cost.shapes;
  if (rows.length === 0) {
    console.error(
      `--shapes ${picked.join(',')} matches no cost shape: ${shapes.map((s) => s.label)}`,
    );
    process.exit(2);
  }
  const { summary } = slice;
  const answered = (rows.find((r) => r.rate && !r.first) ?? rows[0]).sender;
  console.log(
    `\nPuffy slice: the first ${summary.events.toLocaleString('en')} messages of the week in ` +
      `event-time order (${summary.from} to ${summary.to}, ${summary.hours} h), shifted to end ` +
      `1 s before each run starts: ${summary.people.toLocaleString('en')} people ` +
      `(${summary.browserIds.toLocaleString('en')} browser ids), ${summary.eventsPerPerson} ` +
      `events per person; ${JSON.stringify(summary.types)}. Refused ${answered.rejected} ` +
      `(${summary.withoutIds} carry no id), filtered ${answered.filtered}.`,
  );
  for (const { label, sender } of rows) {
    if (sender.keptUp === false) {
      console.log(
        `${label}: could not keep the rate, reached ${sender.eventsPerSecond} ev/s, ` +
          `a request up to ${sender.maxLateMs} ms late.`,
      );
    }
  }
  const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(2));
  const sentAt = ({ rate, sender }) =>
    rate
      ? `${sender.eventsPerSecond.toLocaleString('en')}${sender.keptUp ? '' : ' (behind)'}`
      : `${sender.eventsPerSecond.toLocaleString('en')} (full speed)`;
  table(
    'Cost: usage per 1,000 events sent and $ per million events at list prices',
    [
      'traffic',
      'sent ev/s',
      'Worker req',
      'Worker CPU ms (≤)',
      'DO req',
      'DO GB-s (≤)',
      'D1 rows read',
      'D1 rows written',
      'DO rows read',
      'DO rows written',
      '$ / M events',
    ],
    rows.map((r) => [
      r.label,
      sentAt(r),
      fmt(r.usage.workerRequests),
      fmt(r.usage.workerCpuMs),
      fmt(r.usage.objectRequests),
      fmt(r.usage.objectGbSeconds),
      fmt(r.usage.d1RowsRead),
      fmt(r.usage.d1RowsWritten),
      fmt(r.usage.sqlRowsRead),
      fmt(r.usage.sqlRowsWritten),
      `$${r.totalPerMillion.toFixed(2)}`,
    ]),
  );
  table(
    'Cost: $ per million events by part',
    ['traffic', ...Object.keys(rows[0].dollars)],
    rows.map((r) => [r.label, ...Object.values(r.dollars).map((d) => `$${d.toFixed(3)}`)]),
  );
  if (results.cost.lone) {
    table(
      `Cost: rows written by one event alone in its flush (the slice's first ${SLOW_EVENTS}, ` +
        'one request each, its flush awaited before the next)',
      ['event', 'events', 'D1 rows written', 'DO rows written'],
      results.cost.lone.map((k) => [
        k.kind,
        k.events,
        k.d1RowsWritten.toFixed(1),
        k.sqlRowsWritten.toFixed(1),
      ]),
    );
  }
  for (const { label, d1WrittenBySql } of rows) {
    table(
      `D1 rows written per 1,000 events by statement: ${label}`,
      ['rows', 'statement (first 100 characters, # a hash of the whole)'],
      d1WrittenBySql.slice(0, 12).map(([sql, n]) => [fmt(n), `\`${sql}\``]),
    );
  }
  console.log(`\nPrices used (USD per million units): ${JSON.stringify(PRICES)}`);
  results.cost.memory = peakSince(costMark);
  console.log(`Peak workerd memory over the cost stacks: ${results.cost.memory} MiB.`);
}

if (wants('cron')) {
  results.cron = await withStack({}, async ({ baseUrl, pid, persistTo }) => ({
    ...(await measureCron({
      baseUrl,
      persistDir: persistTo,
      adminHeaders: admin,
      siteId: demo.siteId,
    })),
    memory: peakWorkerdMemory(pid),
  }));
  const r = results.cron;
  table(
    'Cron: one scheduled run (all cron work) at 100 goals × 5 steps, 5 weeks of hourly volumes',
    ['goals', 'steps checked', 'volume rows', 'run ms (3 slots)', 'alerts open', 'peak MiB'],
    [
      [
        r.goals,
        r.steps,
        r.volumeRows.toLocaleString('en'),
        r.runsMs.join(' / '),
        r.openAlerts,
        r.memory,
      ],
    ],
  );
}

console.log(`\n${JSON.stringify({ date: new Date().toISOString(), quick, ...results })}`);
