/**
 * The crash test: the whole `wrangler dev` process group is killed with SIGKILL in the middle
 * of a replay of the Puffy data and started again on the same persisted state. The replay
 * retries whatever was not acknowledged; once the cron's reconciler has run, the report equals
 * the independent DuckDB oracle's (which an uninterrupted replay also equals, see
 * replay-oracle.test.ts): nothing lost, nothing counted twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeFunnel, demoGoal } from '../../scripts/lib/oracle-core.mjs';
import { replay } from '../../scripts/lib/replay-core.mjs';
import { fetchReport, freePort, startStack, waitForSettled } from '../../scripts/lib/stack.mjs';
import { puffyTestDir } from '../../scripts/lib/puffy.mjs';

const DATA_DIR = puffyTestDir();
const RANGE = { from: '2025-02-23', to: '2025-03-02' };
const ADMIN_TOKEN = 'adm_e2e_crash_token_0000000001';
const STEP_FIELDS = ['index', 'event', 'count', 'conversionFromPrevious', 'dropOff'] as const;

interface Stack {
  baseUrl: string;
  pid: number;
  stop(): Promise<void>;
}
interface Funnel {
  entered: number;
  completed: number;
  steps: Array<Record<string, unknown>>;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function comparable(report: Funnel): Funnel {
  return {
    entered: report.entered,
    completed: report.completed,
    steps: report.steps.map((s) => Object.fromEntries(STEP_FIELDS.map((k) => [k, s[k]]))),
  };
}

describe('SIGKILL of the whole local server in the middle of a replay', () => {
  let persistTo = '';
  let port = 0;
  let stack: Stack | undefined;
  const start = async () => {
    stack = (await startStack({
      port,
      persistTo,
      vars: { ADMIN_TOKEN },
    })) as Stack;
    return stack;
  };

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'goalstep-e2e-crash-'));
    port = await freePort();
    await start();
  });

  afterAll(async () => {
    await stack?.stop();
    if (persistTo) rmSync(persistTo, { recursive: true, force: true });
  });

  it('loses and doubles nothing once the replay retried and the reconciler ran', async () => {
    const first = stack as Stack;
    let killedAt = -1;
    let restarted: Promise<Stack> | undefined;

    const replaying = replay({
      dir: DATA_DIR,
      url: first.baseUrl,
      adminToken: ADMIN_TOKEN,
      siteId: 'demo',
      batchSize: 100,
      concurrency: 4,
      // Pending batches of the killed server wait for the reconciler, run below.
      statusTimeoutMs: 1_000,
      onProgress: ({ accepted }: { accepted: number }) => {
        if (killedAt >= 0 || accepted < 8_000) return;
        killedAt = accepted;
        // The whole group: wrangler, workerd and their helpers, with no chance to flush.
        process.kill(-first.pid, 'SIGKILL');
        restarted = (async () => {
          while (groupAlive(first.pid)) await sleep(50);
          return start();
        })();
      },
    });
    const summary = await replaying;
    expect(killedAt).toBeGreaterThan(0);
    const second = await (restarted as Promise<Stack>);
    // Requests in flight at the kill got network errors and were sent again.
    expect(summary.retries).toBeGreaterThan(0);

    // The reconciler, as the cron runs it, with a time past its grace period.
    const time = Date.now() + 5 * 60_000;
    const cron = await fetch(
      `${second.baseUrl}/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*&time=${time}`,
    );
    expect(cron.status).toBe(200);
    const status = await waitForSettled(second.baseUrl, ADMIN_TOKEN);
    expect(status.pendingBatches).toBe(0);

    const { steps, windowSeconds } = demoGoal();
    const expected = await computeFunnel({
      dir: DATA_DIR,
      steps,
      windowSeconds,
      from: `${RANGE.from}T00:00:00.000Z`,
      to: `${RANGE.to}T00:00:00.000Z`,
    });
    const report = await fetchReport(second.baseUrl, RANGE, ADMIN_TOKEN);
    expect(comparable(report)).toEqual(comparable(expected));

    // Nothing was lost: replaying everything again stores nothing new.
    const again = await replay({
      dir: DATA_DIR,
      url: second.baseUrl,
      adminToken: ADMIN_TOKEN,
      siteId: 'demo',
      batchSize: 100,
      concurrency: 4,
    });
    expect(again.accepted).toBe(0);
    expect(again.duplicates + again.rejected + again.filtered).toBe(again.sent);
    const after = await waitForSettled(second.baseUrl, ADMIN_TOKEN);
    expect(after.events).toBe(status.events);
    expect(after.events).toBe(again.duplicates);
  });
});
