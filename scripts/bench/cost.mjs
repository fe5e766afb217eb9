/**
 * The `cost` section of `npm run bench`: what goalstep's ingest path is billed for, counted on a
 * stack started with `METER=1` (src/lib/meter.ts reads D1's own result `meta` and the objects'
 * SQLite cursors), per 1,000 events, priced at Cloudflare's list prices.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { reportUrl } from '../lib/stack.mjs';
import { loadTest, pacedSend, postJson } from './load.mjs';
import { batchesOf, shiftToEnd } from './puffy-slice.mjs';

/**
 * Cloudflare list prices (USD) beyond the Workers Paid plan's included usage, as read on
 * 2026-12-04 from developers.cloudflare.com: D1 pricing, Durable Objects pricing (SQLite
 * storage backend), Workers Standard pricing.
 */
export const PRICES = {
  workerRequestPerM: 0.3,
  workerCpuMsPerM: 0.02,
  objectRequestPerM: 0.15,
  objectGbSecondPerM: 12.5,
  d1RowReadPerM: 0.001,
  d1RowWrittenPerM: 1.0,
  sqlRowReadPerM: 0.001,
  sqlRowWrittenPerM: 1.0,
};

/** An object's memory as billed: 128 MB per object, whatever it uses. */
const OBJECT_GB = 0.128;

/** CPU time (ms, user + system) of each thread of the workerd processes in a process group. */
export function workerdThreadCpuMs(pgid) {
  const ticksPerSecond = 100;
  const threads = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      if (!readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('workerd')) continue;
      for (const task of readdirSync(`/proc/${entry}/task`)) {
        const line = readFileSync(`/proc/${entry}/task/${task}/stat`, 'utf8');
        const own = line.slice(line.lastIndexOf(')') + 2).split(' ');
        // utime and stime are fields 14 and 15 of a stat line (11 and 12 after the name).
        const ticks = Number(own[11]) + Number(own[12]);
        threads.set(`${entry}/${task}`, (ticks * 1000) / ticksPerSecond);
      }
    } catch {
      // The process or thread ended while we looked.
    }
  }
  return threads;
}

/** CPU time (ms, user + system) of the workerd processes in a process group. */
export function workerdCpuMs(pgid) {
  let ms = 0;
  for (const threadMs of workerdThreadCpuMs(pgid).values()) ms += threadMs;
  return ms;
}

/**
 * The busiest workerd thread's CPU time between two `workerdThreadCpuMs` readings, as a share
 * of `wallMs`: near 1, that thread bounds the run (locally the isolate's, where the Worker and
 * the site objects run, the objects' SQLite included).
 */
export function busiestThreadShare(before, after, wallMs) {
  let most = 0;
  for (const [thread, ms] of after) most = Math.max(most, ms - (before.get(thread) ?? 0));
  return +(most / wallMs).toFixed(2);
}

async function meter(baseUrl, admin, siteId, reset) {
  const path = reset ? '/admin/meter/reset' : '/admin/meter';
  const response = await fetch(`${baseUrl}${path}?site=${encodeURIComponent(siteId)}`, {
    method: reset ? 'POST' : 'GET',
    headers: admin,
  });
  if (!response.ok) throw new Error(`${path} → ${response.status} ${await response.text()}`);
  const { tallies } = await response.json();
  const sum = { bySql: {} };
  for (const tally of tallies) {
    for (const [key, value] of Object.entries(tally)) {
      if (typeof value === 'number') sum[key] = (sum[key] ?? 0) + value;
    }
    for (const [sql, rows] of Object.entries(tally.d1WrittenBySql ?? {})) {
      sum.bySql[sql] = (sum.bySql[sql] ?? 0) + rows;
    }
  }
  return sum;
}

async function pendingBatches(baseUrl, admin, siteId) {
  const response = await fetch(`${baseUrl}/admin/sites/${siteId}/pending`, { headers: admin });
  return (await response.json()).pendingBatches;
}

/** Polls `/pending` every `pollMs` until no batch is pending; resolves with the polls made. */
async function settle(baseUrl, admin, siteId, pollMs) {
  let polls = 1;
  while ((await pendingBatches(baseUrl, admin, siteId)) > 0) {
    polls += 1;
    await new Promise((done) => setTimeout(done, pollMs));
  }
  return polls;
}

/**
 * Sends one shape's traffic to `/v1/batch`: synthetic (`eventsPerPerson` set: `events` made-up
 * events, a person's adjacent, as fast as 4 connections go) or the Puffy slice's messages (its
 * `first` ones when set) paced at `rate` events per second, shifted to end one second before
 * the sending starts. Resolves with the sender's figures, `requests` and `events` included.
 */
async function sendShape(url, headers, shape, slice) {
  const { batchSize, eventsPerPerson, rate, first } = shape;
  if (eventsPerPerson === undefined) {
    const messages = shiftToEnd(slice.messages.slice(0, first), Date.now() - 1000);
    return pacedSend({ url, headers, batches: batchesOf(messages, batchSize), rate });
  }
  const requests = Math.ceil(shape.events / batchSize);
  const load = await loadTest({
    url,
    headers,
    connections: 4,
    batchSize,
    requests,
    eventsPerPerson,
  });
  return { ...load, events: requests * batchSize };
}

/**
 * Opens the demo report once, fresh: a report folds the rollup log first (the cost stacks answer
 * every report from rollups, `ROLLUP_MIN_PEOPLE` 0), so the rollup rows that the run's writes
 * owe are written and counted in the run, however many of them its own flushes folded.
 */
async function foldByReport(baseUrl, admin) {
  const url = reportUrl(baseUrl, { format: 'json' });
  const response = await fetch(url, { headers: { ...admin, 'cache-control': 'no-cache' } });
  if (!response.ok) throw new Error(`${url} → ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * Sends one shape's traffic (`sendShape`), waits until the progress rows reflect it, opens the
 * report once (which folds the rollup log: `foldByReport`), and returns the metered usage per
 * 1,000 events sent with its price per million events. The pending polls and the meter reads are
 * measured alone afterwards and taken out.
 */
export async function measureCost({ baseUrl, pid, admin, writeKeyAuth, siteId, shape, slice }) {
  await meter(baseUrl, admin, siteId, true);
  const cpuBefore = workerdCpuMs(pid);
  const started = performance.now();
  const sender = await sendShape(`${baseUrl}/v1/batch`, writeKeyAuth, shape, slice);
  const polls = await settle(baseUrl, admin, siteId, 250);
  const report = await foldByReport(baseUrl, admin);
  if (report.source !== 'rollup') throw new Error(`the report came from ${report.source}`);
  const elapsedMs = performance.now() - started;
  const cpuMs = workerdCpuMs(pid) - cpuBefore;
  const used = await meter(baseUrl, admin, siteId, false);
  // The overhead: one meter read and `polls` pending reads, measured on their own.
  await meter(baseUrl, admin, siteId, true);
  for (let i = 0; i < polls; i += 1) await pendingBatches(baseUrl, admin, siteId);
  const overhead = await meter(baseUrl, admin, siteId, false);

  const { events: sent, requests } = sender;
  const per1k = (key) => Math.max(0, ((used[key] ?? 0) - (overhead[key] ?? 0)) * (1000 / sent));
  const usage = {
    workerRequests: (requests * 1000) / sent,
    workerCpuMs: (cpuMs * 1000) / sent,
    objectRequests: per1k('objectRequests') + per1k('objectAlarms'),
    // The calls' wall times summed count the coalescing pauses of overlapping calls once each;
    // the site's one object is not billed for more than the wall time of the whole run.
    objectGbSeconds: (Math.min(per1k('objectMs'), (elapsedMs * 1000) / sent) / 1000) * OBJECT_GB,
    d1RowsRead: per1k('d1RowsRead'),
    d1RowsWritten: per1k('d1RowsWritten'),
    sqlRowsRead: per1k('sqlRowsRead'),
    sqlRowsWritten: per1k('sqlRowsWritten'),
  };
  // Per 1,000 events × 1,000 = per million events; prices are per million units.
  const dollars = {
    workerRequests: (usage.workerRequests * PRICES.workerRequestPerM) / 1000,
    workerCpu: (usage.workerCpuMs * PRICES.workerCpuMsPerM) / 1000,
    objectRequests: (usage.objectRequests * PRICES.objectRequestPerM) / 1000,
    objectDuration: (usage.objectGbSeconds * PRICES.objectGbSecondPerM) / 1000,
    d1RowsRead: (usage.d1RowsRead * PRICES.d1RowReadPerM) / 1000,
    d1RowsWritten: (usage.d1RowsWritten * PRICES.d1RowWrittenPerM) / 1000,
    sqlRowsRead: (usage.sqlRowsRead * PRICES.sqlRowReadPerM) / 1000,
    sqlRowsWritten: (usage.sqlRowsWritten * PRICES.sqlRowWrittenPerM) / 1000,
  };
  const total = Object.values(dollars).reduce((a, b) => a + b, 0);
  // D1 rows written per 1,000 events by statement, most first.
  const d1WrittenBySql = Object.entries(used.bySql)
    .map(([sql, rows]) => [sql, (rows * 1000) / sent])
    .sort((a, b) => b[1] - a[1]);
  return { ...shape, sent, sender, usage, dollars, totalPerMillion: total, d1WrittenBySql };
}

/**
 * Rows written (D1, and the object's SQLite) by each of `messages` sent alone: one event per
 * request, shifted to end now, its flush awaited and the meter read before the next, so no
 * other event shares its flush. Grouped by kind: refused, filtered, identify, and a new or
 * known person's event that is or is not their next step of the goal (`steps`, event names in
 * order): a new person's first step starts an attempt, a known person's next step is a
 * progression. Rows read are left out: the pending polls between events read the batch records.
 */
export async function measureLoneEvents({ baseUrl, admin, writeKeyAuth, siteId, messages, steps }) {
  const url = `${baseUrl}/v1/batch`;
  // The furthest goal step (index, -1 for none yet) of each person stored so far.
  const furthest = new Map();
  const kinds = new Map();
  let polls = 0;
  await meter(baseUrl, admin, siteId, true);
  for (const message of shiftToEnd(messages, Date.now() - 1000)) {
    const { answer } = await postJson(url, writeKeyAuth, JSON.stringify({ batch: [message] }));
    polls += await settle(baseUrl, admin, siteId, 25);
    const used = await meter(baseUrl, admin, siteId, true);
    const person = message.anonymousId ?? message.userId;
    const before = furthest.get(person) ?? -1;
    const next = steps.indexOf(message.event) === before + 1;
    let kind;
    if (answer?.rejected?.length) kind = 'refused';
    else if (answer?.filtered?.length) kind = 'filtered';
    else if (message.type === 'identify') kind = 'identify';
    else {
      const who = furthest.has(person) ? 'known person' : 'new person';
      kind = `${who}, ${next ? 'next goal step' : 'other event'}`;
    }
    const stored = kind !== 'refused' && kind !== 'filtered';
    if (stored && person !== undefined) furthest.set(person, next ? before + 1 : before);
    const sum = kinds.get(kind) ?? { kind, events: 0, d1RowsWritten: 0, sqlRowsWritten: 0 };
    sum.events += 1;
    sum.d1RowsWritten += used.d1RowsWritten ?? 0;
    sum.sqlRowsWritten += used.sqlRowsWritten ?? 0;
    kinds.set(kind, sum);
  }
  // What the pending polls write themselves (nothing, as measured; meter reads write nothing).
  for (let i = 0; i < polls; i += 1) await pendingBatches(baseUrl, admin, siteId);
  const overhead = await meter(baseUrl, admin, siteId, true);
  const perEvent = (key) => (overhead[key] ?? 0) / messages.length;
  const byCount = [...kinds.values()].sort((a, b) => b.events - a.events);
  return byCount.map((sum) => ({
    kind: sum.kind,
    events: sum.events,
    d1RowsWritten: sum.d1RowsWritten / sum.events - perEvent('d1RowsWritten'),
    sqlRowsWritten: sum.sqlRowsWritten / sum.events - perEvent('sqlRowsWritten'),
  }));
}
