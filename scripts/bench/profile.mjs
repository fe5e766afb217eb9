#!/usr/bin/env node
/**
 * `npm run bench:profile [-- --batches 60 --per-person 1 --top 25]`: where the time of
 * the processing benchmark goes. Starts a fresh stack, takes a V8 CPU profile of goalstep's
 * isolate (the Worker and its Durable Objects) through wrangler's devtools port while batches of
 * 100 web-shaped events are sent and applied, and prints the functions with the most self time
 * and the share of the profile the isolate spent idle (waiting on D1, which runs elsewhere in
 * workerd, or on the network). The `/pending` polls that wait for the last flush are inside the
 * window (their admin-token check shows up): with fewer than about 60 batches they weigh on
 * the table. Prints Markdown for docs/BENCHMARKS.md; `--save <file>` keeps the raw profile
 * (a .cpuprofile for Chrome's DevTools).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, readDemo, startStack, waitForPending } from '../lib/stack.mjs';
import { loadTest } from './load.mjs';
import { option } from './puffy-stack.mjs';

const batches = Number(option('--batches', '60'));
const perPerson = Number(option('--per-person', '1'));
const top = Number(option('--top', '25'));
const adminToken = 'adm_profile_token_0000000000001';
const demo = readDemo();

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function devtools(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
  // The inspector proxy refuses a socket without a local Origin.
  const socket = new WebSocket(target.webSocketDebuggerUrl, {
    headers: { origin: 'http://127.0.0.1' },
  });
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', reject, { once: true });
  });
  let id = 0;
  const waiting = new Map();
  socket.addEventListener('message', (message) => {
    const data = JSON.parse(message.data);
    const done = waiting.get(data.id);
    if (!done) return;
    waiting.delete(data.id);
    if (data.error) done.reject(new Error(JSON.stringify(data.error)));
    else done.resolve(data.result);
  });
  return {
    send(method, params = {}) {
      id += 1;
      socket.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
    },
    close: () => socket.close(),
  };
}

/** Self time (ms) per function, from a CPU profile's samples. */
function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const ms = new Map();
  for (let i = 0; i < profile.samples.length; i += 1) {
    const node = byId.get(profile.samples[i]);
    const frame = node.callFrame;
    const file = frame.url ? frame.url.split('/').slice(-2).join('/') : '';
    const name = `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`;
    ms.set(name, (ms.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  return ms;
}

const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-profile-'));
const stack = await startStack({
  port: await freePort(18_000, 1000),
  persistTo,
  vars: { ADMIN_TOKEN: adminToken },
});
try {
  const tools = await devtools(stack.inspectorPort);
  await tools.send('Profiler.enable');
  await tools.send('Profiler.setSamplingInterval', { interval: 200 });
  await tools.send('Profiler.start');
  const load = await loadTest({
    url: `${stack.baseUrl}/v1/batch`,
    headers: { authorization: `Basic ${Buffer.from(`${demo.writeKey}:`).toString('base64')}` },
    connections: 4,
    batchSize: 100,
    requests: batches,
    eventsPerPerson: perPerson,
  });
  await waitForPending(stack.baseUrl, adminToken, { timeoutMs: 600_000 });
  const { profile } = await tools.send('Profiler.stop');
  tools.close();
  const save = option('--save', '');
  if (save) writeFileSync(save, JSON.stringify(profile));

  const times = selfTimes(profile);
  const total = [...times.values()].reduce((a, b) => a + b, 0);
  const idle = [...times].filter(([name]) => /^\((idle|program)\)/.test(name));
  const idleMs = idle.reduce((sum, [, ms]) => sum + ms, 0);
  console.log(
    `\n${batches * 100} events (${perPerson} per person), ingest ${load.eventsPerSecond} ev/s; ` +
      `profile ${Math.round(total)} ms, idle or program ${Math.round((idleMs / total) * 100)} %\n`,
  );
  console.log('| self ms | share of busy | function |\n| --- | --- | --- |');
  const busy = total - idleMs;
  const ranked = [...times].filter(([name]) => !/^\((idle|program)\)/.test(name));
  ranked.sort((a, b) => b[1] - a[1]);
  for (const [name, ms] of ranked.slice(0, top)) {
    console.log(`| ${ms.toFixed(1)} | ${((ms / busy) * 100).toFixed(1)} % | \`${name}\` |`);
  }
} finally {
  await stack.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
