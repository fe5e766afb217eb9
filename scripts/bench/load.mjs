/**
 * Load generation for `npm run bench`: a fixed number of POST requests at a fixed concurrency
 * (keep-alive fetch), with a fresh body per request, and the events they carry.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

let sequence = 0;
const run = `${process.pid}-${Date.now().toString(36)}`;

const USER_AGENTS = [
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like ' +
    'Gecko) Version/18.3 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/133.0.0.0 Safari/537.36',
];

/**
 * One web-shaped event: a page view (most visitors) or a later funnel step, from a person that
 * sends `eventsPerPerson` events in all.
 */
export function makeEvent(eventsPerPerson = 1) {
  sequence += 1;
  const person = Math.floor(sequence / eventsPerPerson);
  const steps = ['page_viewed', 'product_added_to_cart', 'checkout_started', 'checkout_completed'];
  const event = steps[Math.min(sequence % eventsPerPerson, steps.length - 1)];
  return {
    type: 'track',
    event,
    anonymousId: `bench-${run}-${person}`,
    messageId: `bench-${run}-${sequence}`,
    timestamp: new Date(Date.now() - 1000).toISOString(),
    properties: { path: '/products/puffy-mattress', title: 'Puffy Mattress' },
    context: {
      userAgent: USER_AGENTS[sequence % USER_AGENTS.length],
      page: { url: 'https://shop.example/products/puffy-mattress?utm_source=bench', referrer: '' },
    },
  };
}

/** A `{ batch }` body of `size` fresh events. */
export function makeBatch(size, eventsPerPerson = 1) {
  return { batch: Array.from({ length: size }, () => makeEvent(eventsPerPerson)) };
}

/**
 * POSTs one JSON body with a 60 s timeout. Resolves with its latency (ms), whether it was 2xx,
 * and its answer parsed as JSON (null when it is not); a network failure counts as not 2xx.
 */
export async function postJson(url, headers, body) {
  const t0 = performance.now();
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    let answer = null;
    try {
      answer = JSON.parse(text);
    } catch {
      // Not JSON: only the status counts.
    }
    return { ms: performance.now() - t0, ok: response.ok, answer };
  } catch {
    return { ms: performance.now() - t0, ok: false, answer: null };
  }
}

/** p50 and p99 (ms, one decimal) of a list of latencies. */
function percentiles(latencies) {
  const sorted = [...latencies].sort((x, y) => x - y);
  const at = (q) => +sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
  return { p50: at(0.5), p99: at(0.99) };
}

/**
 * Sends `requests` POSTs of `batchSize` events each with `connections` in flight (keep-alive),
 * timing each one. Resolves with events per second, latency percentiles (ms) and the count of
 * non-2xx answers. Its own loop rather than autocannon: autocannon ends a fixed-count run on its
 * one-second tick, which quantised the rate of the short runs this benchmark makes.
 */
export async function loadTest({
  url,
  headers = {},
  batchSize,
  requests,
  connections,
  eventsPerPerson = 1,
}) {
  const latencies = [];
  let sent = 0;
  let non2xx = 0;
  const bodies = Array.from({ length: requests }, () =>
    JSON.stringify(makeBatch(batchSize, eventsPerPerson)),
  );
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (sent < requests) {
        const body = bodies[sent];
        sent += 1;
        const { ms, ok } = await postJson(url, headers, body);
        if (!ok) non2xx += 1;
        latencies.push(ms);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    batchSize,
    connections,
    requests,
    eventsPerSecond: Math.round((requests * batchSize) / seconds),
    ...percentiles(latencies),
    non2xx,
  };
}

/**
 * A constant-rate sender: POSTs the `{ batch }` bodies of `batches` (arrays of events) in order,
 * request k when the events before it divided by `rate` (events per second) have elapsed since
 * the start, whatever the earlier answers, with at most `maxInFlight` unanswered. It never sends
 * ahead of that schedule, so at no time has it sent more than `rate` × elapsed plus one batch;
 * when the server (or this process) cannot keep up, requests go late and `keptUp` is false.
 * Resolves with the rate reached, the largest lateness, latency percentiles and the ingest
 * answers added up (`accepted`, `duplicates`, `rejected`, `filtered`).
 */
export async function pacedSend({ url, headers = {}, batches, rate, maxInFlight = 64 }) {
  const bodies = batches.map((batch) => JSON.stringify({ batch }));
  const latencies = [];
  const counts = { accepted: 0, duplicates: 0, rejected: 0, filtered: 0, non2xx: 0 };
  const record = ({ ms, ok, answer }) => {
    latencies.push(ms);
    if (!ok) counts.non2xx += 1;
    counts.accepted += Number(answer?.accepted) || 0;
    counts.duplicates += Number(answer?.duplicates) || 0;
    counts.rejected += Array.isArray(answer?.rejected) ? answer.rejected.length : 0;
    counts.filtered += Array.isArray(answer?.filtered) ? answer.filtered.length : 0;
  };
  const inFlight = new Set();
  let before = 0;
  let lastSentAt = 0;
  let maxLateMs = 0;
  const started = performance.now();
  for (let k = 0; k < bodies.length; k += 1) {
    const due = started + (before * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((done) => setTimeout(done, wait));
    while (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    lastSentAt = performance.now();
    maxLateMs = Math.max(maxLateMs, lastSentAt - due);
    const request = postJson(url, headers, bodies[k])
      .then(record)
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
    if (k < bodies.length - 1) before += batches[k].length;
  }
  await Promise.all(inFlight);
  // The rate reached: the events sent before the last request over the time it took to reach it.
  const reached = before > 0 ? before / ((lastSentAt - started) / 1000) : rate;
  return {
    rate,
    eventsPerSecond: Math.round(reached),
    maxLateMs: Math.round(maxLateMs),
    keptUp: reached >= 0.95 * rate && maxLateMs <= 1000,
    requests: bodies.length,
    events: batches.reduce((sum, batch) => sum + batch.length, 0),
    ...percentiles(latencies),
    ...counts,
  };
}

/**
 * Peak resident memory (MiB, the kernel's VmHWM) of the workerd processes in a process group:
 * the Worker, its Durable Objects and local D1 all live in workerd.
 */
export function peakWorkerdMemory(pgid) {
  let peakKb = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 5 (process group) follows the parenthesised command name.
      const group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (group !== pgid || !readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('workerd')) {
        continue;
      }
      const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      peakKb += Number(hwm?.[1] ?? 0);
    } catch {
      // The process ended while we looked.
    }
  }
  return Math.round(peakKb / 1024);
}
