#!/usr/bin/env node
/**
 * `node scripts/bench/rollup-keys.mjs [events] [--data <dir>]`: how many rollup rows a fold of
 * the Puffy slice writes with hourly keys, and how many it would write with daily ones
 * (docs/BENCHMARKS.md, session 8). Sends the slice's first `events` messages (3,000 by default)
 * to a fresh stack in batches of 100, opens the report from rollups (which folds the log), then
 * counts the rollup rows and the rows left once every hour key (`hour`, `prev_hour`,
 * `next_hour`, `open_hour`) is cut to its day: what a design keyed by day would hold.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  freePort,
  openLocalD1,
  readDemo,
  repoRoot,
  reportUrl,
  startStack,
  waitForPending,
} from '../lib/stack.mjs';
import { pacedSend } from './load.mjs';
import { option } from './puffy-stack.mjs';
import { batchesOf, readPuffySlice, shiftToEnd } from './puffy-slice.mjs';

const events = Number(
  process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 3000,
);
const dir = resolve(option('--data', join(repoRoot, '..', 'shared', 'data', 'puffy')));
const adminToken = 'adm_keys_token_00000000000000001';
const demo = readDemo();
const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-keys-'));
const stack = await startStack({
  port: await freePort(18_500, 500),
  persistTo,
  vars: { ADMIN_TOKEN: adminToken, ROLLUP_MIN_PEOPLE: '0' },
});
try {
  const slice = await readPuffySlice(dir, events);
  const auth = `Basic ${Buffer.from(`${demo.writeKey}:`).toString('base64')}`;
  await pacedSend({
    url: `${stack.baseUrl}/v1/batch`,
    headers: { authorization: auth },
    batches: batchesOf(shiftToEnd(slice.messages, Date.now() - 1000), 100),
    rate: 5000,
  });
  await waitForPending(stack.baseUrl, adminToken, { timeoutMs: 600_000 });
  const report = await fetch(reportUrl(stack.baseUrl, { format: 'json', from: '2020-01-01' }), {
    headers: { authorization: `Bearer ${adminToken}`, 'cache-control': 'no-cache' },
  });
  const { source } = await report.json();
  if (source !== 'rollup') throw new Error(`the report came from ${source}, not the rollups`);
  const d1 = await openLocalD1(persistTo);
  const count = (sql) => d1.prepare(`SELECT COUNT(*) AS n FROM (${sql})`).get().n;
  const hourly = count('SELECT 1 FROM rollups') + count('SELECT 1 FROM rollup_durations');
  const daily =
    count(`SELECT DISTINCT goal_id, version, dim, value, hour / 24, prev_hour / 24,
      next_hour / 24, open_hour / 24 FROM rollups`) +
    count(`SELECT DISTINCT goal_id, version, dim, value, hour / 24, prev_hour / 24,
      next_hour / 24, step, bucket FROM rollup_durations`);
  const hours = count('SELECT DISTINCT hour FROM rollups');
  d1.close();
  const perEvent = (rows) => (rows / slice.summary.events).toFixed(2);
  console.log(
    `${slice.summary.events} events over ${hours} hours: ${hourly} rollup rows with hourly keys ` +
      `(${perEvent(hourly)} per event), ${daily} with daily keys (${perEvent(daily)} per event).`,
  );
} finally {
  await stack.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
