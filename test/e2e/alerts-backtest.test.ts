/**
 * The backtest on real data: the Puffy week replayed into a real `wrangler dev` stack, then
 * `npm run alerts:backtest -- --json --last` over the week. A normal week raises no alert; what
 * each check computed on the last day is written to the test log for the notes.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { replay } from '../../scripts/lib/replay-core.mjs';
import { readDemo, repoRoot, waitForSettled } from '../../scripts/lib/stack.mjs';
import { useTestStack } from './test-stack';
import { puffyTestDir } from '../../scripts/lib/puffy.mjs';

const DATA_DIR = puffyTestDir();
const run = promisify(execFile);
const stack = useTestStack('alerts-backtest');

async function backtest(args: string[]) {
  const { baseUrl, adminToken } = stack();
  const { stdout } = await run(
    join(repoRoot, 'node_modules', '.bin', 'node'),
    [join(repoRoot, 'scripts', 'alerts-backtest.mjs'), '--url', baseUrl, ...args],
    { env: { ...process.env, GOALSTEP_ADMIN_TOKEN: adminToken }, maxBuffer: 20_000_000 },
  );
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('alerts backtest over the Puffy week', () => {
  it('raises no alert on a normal week; prints each check for its last day', async () => {
    const { baseUrl, adminToken } = stack();
    await replay({
      dir: DATA_DIR,
      url: baseUrl,
      adminToken,
      siteId: readDemo().siteId,
      batchSize: 100,
      concurrency: 4,
      sentAt: true,
      onProgress: () => undefined,
    });
    await waitForSettled(baseUrl, adminToken);

    const lines = await backtest([
      '--from',
      '2025-02-23',
      '--to',
      '2025-03-02',
      '--json',
      '--last',
    ]);
    const actions = lines.filter((line) => !('last' in line));
    const last = lines
      .filter((line) => 'last' in line)
      .map((line) => line.last as Record<string, unknown>);
    process.stdout.write(
      `puffy last-hour checks:\n${last.map((l) => JSON.stringify(l)).join('\n')}\n`,
    );

    expect(actions).toEqual([]);
    // Every step of the demo goal was judged by volume, and the week's last bucket was judged.
    const keys = last.map((l) => l.check);
    for (const step of readDemo().goal.steps) expect(keys).toContain(`volume:${step.event}`);
    const lastRun = last[0]?.lastRun as { window: string[] };
    expect(lastRun.window[1]).toBe('2025-03-02T00:00:00.000Z');
    // The last day is 24 hourly runs of every check, and none of them fired.
    for (const line of last) {
      const day = line.lastDay as { runs: number; verdicts: { firing: number } };
      expect(day.runs).toBe(24);
      expect(day.verdicts.firing).toBe(0);
    }
  });

  it('answers a backtest range that is backwards with a stable error code', async () => {
    // The CLI refuses it before asking (alerts-backtest-cli.test.ts); the server does too.
    const { baseUrl, adminToken } = stack();
    const res = await fetch(`${baseUrl}/admin/sites/${readDemo().siteId}/alerts/backtest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: '2025-03-02T00:00:00Z', to: '2025-02-23T00:00:00Z' }),
    });

    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe('invalid_range');
  });
});
