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
        const t0 = performance.now();
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...headers },
            body,
            signal: AbortSignal.timeout(60_000),
          });
          await response.arrayBuffer();
          if (!response.ok) non2xx += 1;
        } catch {
          non2xx += 1;
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((x, y) => x - y);
  const at = (q) =>
    +latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
  return {
    batchSize,
    connections,
    requests,
    eventsPerSecond: Math.round((requests * batchSize) / seconds),
    p50: at(0.5),
    p99: at(0.99),
    non2xx,
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
