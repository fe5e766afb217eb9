/**
 * The Puffy CSVs replayed into a real `wrangler dev` stack must give the report that the
 * independent DuckDB oracle (scripts/lib/oracle-core.mjs) computes from the same files, and a
 * second replay must store nothing. All seven days by default (about 20 s);
 * GOALSTEP_E2E_QUICK=1 replays one day for a faster loop.
 */
import { computeFunnel, demoGoal } from '../../scripts/lib/oracle-core.mjs';
import { replay } from '../../scripts/lib/replay-core.mjs';
import { fetchReport, waitForSettled } from '../../scripts/lib/stack.mjs';
import { useTestStack } from './test-stack';
import { puffyTestDir } from '../../scripts/lib/puffy.mjs';

const ADMIN_TOKEN = () => stack().adminToken;
const DATA_DIR = puffyTestDir();
const FULL = process.env.GOALSTEP_E2E_QUICK !== '1';
const FILES = FULL ? undefined : ['events_20250223.csv'];
const RANGE = FULL
  ? { from: '2025-02-23', to: '2025-03-02' }
  : { from: '2025-02-23', to: '2025-02-24' };
const STEP_FIELDS = [
  'index',
  'event',
  'count',
  'conversionFromPrevious',
  'conversionFromFirst',
  'dropOff',
  'dropOffRate',
  'medianSecondsFromPrevious',
] as const;

type Step = Record<(typeof STEP_FIELDS)[number], unknown>;
interface Funnel {
  entered: number;
  completed: number;
  steps: Step[];
}

/** The fields the oracle computes, taken from a report, so that the two compare with toEqual. */
function comparable(report: Funnel): Funnel {
  return {
    entered: report.entered,
    completed: report.completed,
    steps: report.steps.map(
      (step) => Object.fromEntries(STEP_FIELDS.map((key) => [key, step[key]])) as Step,
    ),
  };
}

const stack = useTestStack('replay');

describe(`Puffy replay against the DuckDB oracle (${FULL ? 'seven days' : 'one day'})`, () => {
  let firstReport: Funnel & { generatedAt?: string };
  let first: Awaited<ReturnType<typeof replay>>;

  const replayOnce = () =>
    replay({
      dir: DATA_DIR,
      url: stack().baseUrl,
      adminToken: ADMIN_TOKEN(),
      siteId: 'demo',
      batchSize: 100,
      concurrency: 4,
      files: FILES,
    });

  it('reports what the oracle computes', async () => {
    first = await replayOnce();
    expect(first.settled).toBe(true);
    expect(first.accepted).toBeGreaterThan(0);

    const { steps, windowSeconds } = demoGoal();
    expect(windowSeconds).toBe(604_800);
    const expected = await computeFunnel({
      dir: DATA_DIR,
      files: FILES,
      steps,
      windowSeconds,
      from: `${RANGE.from}T00:00:00.000Z`,
      to: `${RANGE.to}T00:00:00.000Z`,
    });
    firstReport = await fetchReport(stack().baseUrl, RANGE, ADMIN_TOKEN());
    expect(comparable(firstReport)).toEqual(expected);
  });

  it('stores nothing twice when the same files are replayed again', async () => {
    expect(first, 'the first replay must have run').toBeDefined();
    const statusBefore = await waitForSettled(stack().baseUrl, ADMIN_TOKEN());
    const second = await replayOnce();
    expect(second.settled).toBe(true);
    expect(second.sent).toBe(first.sent);
    expect(second.accepted).toBe(0);
    expect(second.duplicates).toBe(first.accepted + first.duplicates);

    const statusAfter = await waitForSettled(stack().baseUrl, ADMIN_TOKEN());
    expect(statusAfter.events).toBe(statusBefore.events);
    const again = await fetchReport(stack().baseUrl, RANGE, ADMIN_TOKEN());
    const { generatedAt: _a, ...before } = firstReport;
    const { generatedAt: _b, ...after } = again;
    expect(after).toEqual(before);
  });
});
