/**
 * Shared by the stall benchmarks (override-stall, rebuild-stall): a stack holding the replayed
 * Puffy week, kept in `--state <dir>` between runs when asked, and a probe that imports one
 * event and times it until the site object has applied it.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { replay } from '../lib/replay-core.mjs';
import { freePort, readDemo, repoRoot, startStack, waitForPending } from '../lib/stack.mjs';

const args = process.argv.slice(2);

/** The value after `--name` on the command line, else `fallback`. */
export const option = (name, fallback) =>
  args.includes(name) ? args[args.indexOf(name) + 1] : fallback;

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Starts a stack on `--state <dir>` (or a temporary directory), replays the Puffy week into it
 * once, runs `body({ base, persistTo })` and stops the stack.
 */
export async function withPuffyStack({ adminToken, tmpPrefix }, body) {
  const keep = option('--state', null);
  const persistTo = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), tmpPrefix));
  const stack = await startStack({
    port: await freePort(18_500, 500),
    persistTo,
    vars: { ADMIN_TOKEN: adminToken },
  });
  try {
    const base = stack.baseUrl;
    const marker = join(persistTo, 'puffy-week-replayed');
    if (!existsSync(marker)) {
      const dir = resolve(repoRoot, '..', 'shared', 'data', 'puffy');
      await replay({ dir, url: base, adminToken, siteId: readDemo().siteId });
      await waitForPending(base, adminToken, { timeoutMs: 600_000 });
      writeFileSync(marker, new Date().toISOString());
    }
    return await body({ base, persistTo });
  } finally {
    await stack.stop();
    if (!keep) rmSync(persistTo, { recursive: true, force: true });
  }
}

/**
 * Imports one page view with id `id` and waits until `/pending` (polled every 50 ms) shows no
 * pending batch. Resolves with `{ ackMs, appliedMs }`.
 */
export async function probeImport(base, adminToken, id) {
  const siteId = readDemo().siteId;
  const started = performance.now();
  const res = await fetch(`${base}/v1/import?site=${siteId}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      batch: [
        {
          type: 'track',
          event: 'page_viewed',
          anonymousId: id,
          messageId: id,
          timestamp: '2025-02-26T12:00:00Z',
        },
      ],
    }),
  });
  if (!res.ok) throw new Error(`import → ${res.status} ${await res.text()}`);
  const ackMs = performance.now() - started;
  await waitForPending(base, adminToken, { siteId });
  return { ackMs, appliedMs: performance.now() - started };
}
