/**
 * Segment's own Node library (@segment/analytics-node) against a real `wrangler dev` stack: the
 * Segment-compatible ingest must take what the library sends, and an anonymous visitor who then
 * identifies must count as one person in the report.
 */
import { Analytics } from '@segment/analytics-node';
import {
  fetchReport,
  readDemo,
  waitForSettled,
} from '../../scripts/lib/stack.mjs';
import { useTestStack } from './test-stack';

const ADMIN_TOKEN = () => stack().adminToken;
const demo = readDemo();

interface ReportStep {
  index: number;
  event: string;
  count: number;
}
interface Report {
  entered: number;
  completed: number;
  steps: ReportStep[];
}

const stack = useTestStack('segment');

/** Sends the calls through one Analytics client; resolves with the HTTP statuses it saw. */
async function send(
  baseUrl: string,
  calls: (analytics: Analytics) => void,
  settings: { flushAt: number },
): Promise<{ statuses: number[]; errors: unknown[] }> {
  const analytics = new Analytics({
    writeKey: demo.writeKey,
    host: baseUrl,
    path: '/v1/batch',
    flushAt: settings.flushAt,
    // Nothing is sent by the timer: closeAndFlush() sends whatever is queued.
    flushInterval: 60_000,
    maxRetries: 2,
    httpRequestTimeout: 30_000,
  });
  const statuses: number[] = [];
  const errors: unknown[] = [];
  analytics.on('http_response', (response) => statuses.push(response.status));
  analytics.on('error', (error) => errors.push(error));
  calls(analytics);
  await analytics.closeAndFlush({ timeout: 60_000 });
  return { statuses, errors };
}

describe('@segment/analytics-node against wrangler dev', () => {
  it('counts an anonymous visitor who identifies as one person', async () => {
    const { baseUrl } = stack();
    // Recent times (the public write key takes only those), one second apart so that the
    // order of the steps is unambiguous.
    const start = Date.now() - 120_000;
    const at = (second: number) => new Date(start + second * 1000);
    const [step1, step2, step3] = demo.goal.steps.map((step: { event: string }) => step.event);

    // Person 1 browses anonymously, identifies, and goes on with only the user id: steps 1-3.
    const person1 = await send(
      baseUrl,
      (analytics) => {
        analytics.track({ anonymousId: 'anon-e2e-1', event: step1, timestamp: at(0) });
        analytics.track({ anonymousId: 'anon-e2e-1', event: step2, timestamp: at(1) });
        analytics.identify({
          anonymousId: 'anon-e2e-1',
          userId: 'user-e2e-1',
          traits: { plan: 'test' },
          timestamp: at(2),
        });
        analytics.track({ userId: 'user-e2e-1', event: step3, timestamp: at(3) });
      },
      { flushAt: 20 },
    );
    // Person 2 only views a page; one request per call this time.
    const person2 = await send(
      baseUrl,
      (analytics) => {
        analytics.track({
          anonymousId: 'anon-e2e-2',
          event: step1,
          properties: { path: '/' },
          timestamp: at(4),
        });
      },
      { flushAt: 1 },
    );
    expect(person1.errors).toEqual([]);
    expect(person2.errors).toEqual([]);
    expect(person1.statuses).toEqual([200]);
    expect(person2.statuses).toEqual([200]);

    const status = await waitForSettled(baseUrl, ADMIN_TOKEN());
    expect(status.rejected).toBe(0);
    expect(status.pendingBatches).toBe(0);

    const report = await freshReport();
    // Person 1 reached steps 1-3, person 2 step 1. Had the identify not joined anon-e2e-1 and
    // user-e2e-1, step 3 (sent with the user id only) would have counted 0.
    expect(report.steps.map((step) => step.count)).toEqual([2, 1, 1, 0]);
    expect(report.entered).toBe(2);
    expect(report.completed).toBe(0);
  });

  it('joins the earlier events when the identify arrives after them', async () => {
    const { baseUrl } = stack();
    const start = Date.now() - 60_000;
    const at = (second: number) => new Date(start + second * 1000);
    const [step1, step2, step3, step4] = demo.goal.steps.map(
      (step: { event: string }) => step.event,
    );

    // Person 3: steps 1-2 anonymously, steps 3-4 under the user id, and the identify that joins
    // both (timed in between) sent last, in a request of its own.
    const events = await send(
      baseUrl,
      (analytics) => {
        analytics.track({ anonymousId: 'anon-e2e-3', event: step1, timestamp: at(0) });
        analytics.track({ anonymousId: 'anon-e2e-3', event: step2, timestamp: at(1) });
        analytics.track({ userId: 'user-e2e-3', event: step3, timestamp: at(3) });
        analytics.track({ userId: 'user-e2e-3', event: step4, timestamp: at(4) });
      },
      { flushAt: 20 },
    );
    expect(events.statuses).toEqual([200]);
    await waitForSettled(baseUrl, ADMIN_TOKEN());
    // Not yet joined: anon-e2e-3 reached steps 1-2; user-e2e-3 never saw step 1.
    const before = await freshReport();
    expect(before.steps.map((step) => step.count)).toEqual([3, 2, 1, 0]);

    const identify = await send(
      baseUrl,
      (analytics) => {
        analytics.identify({ anonymousId: 'anon-e2e-3', userId: 'user-e2e-3', timestamp: at(2) });
      },
      { flushAt: 1 },
    );
    expect(identify.statuses).toEqual([200]);
    await waitForSettled(baseUrl, ADMIN_TOKEN());
    const after = await freshReport();
    expect(after.steps.map((step) => step.count)).toEqual([3, 2, 2, 1]);
    expect(after.entered).toBe(3);
    expect(after.completed).toBe(1);
  });
});

/**
 * The report for yesterday to today (UTC days, so that a run across midnight still covers every
 * event sent), bypassing the report cache.
 */
async function freshReport(): Promise<Report> {
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const range = { from: day(Date.now() - 86_400_000), to: day(Date.now() + 86_400_000) };
  return (await fetchReport(stack().baseUrl, range, ADMIN_TOKEN())) as Report;
}

describe('/openapi.json', () => {
  it('is a valid OpenAPI document that describes the ingest and report routes', async () => {
    const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
    const document = await (await fetch(`${stack().baseUrl}/openapi.json`)).json();
    const api = (await SwaggerParser.validate(document)) as { paths: Record<string, unknown> };
    for (const path of ['/v1/batch', '/v1/track', '/v1/import', '/r/{token}/{goalId}']) {
      expect(Object.keys(api.paths)).toContain(path);
    }
  });
});
