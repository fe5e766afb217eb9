/**
 * The tracker's delivery and identity behaviour in Chromium against a real stack: the queue
 * stub, reset() on logout, retries after goalstep answered 503 (through the fault-injecting
 * proxy of tracker-harness.ts), and page views of single-page-app navigations.
 */
import type { Browser, Page } from 'playwright-core';
import {
  distinctEvents,
  freshReport,
  html,
  launchChromium,
  newDevice,
  readmeSnippet,
  seedSite,
  sentBatches,
  startProxy,
  startWebSite,
  trackerTag,
  waitFor,
  waitForStored,
  type Closable,
  type Proxy,
  type SentBatch,
  type TestSite,
} from './tracker-harness';
import { useTestStack } from './test-stack';

const stack = useTestStack('tracker-delivery');
let browser: Browser;
let proxy: Proxy;
let webSite: Closable;
const sites: Record<string, TestSite> = {};

/** `window.goalstep` as the tests call it inside the page. */
interface PageApi {
  goalstep: {
    track(event: string, properties?: Record<string, unknown>): void;
    identify(userId: string, traits?: Record<string, unknown>): void;
    reset(): void;
    user(): { anonymousId: string; userId: string | null };
  };
  calledAt: number;
}

beforeAll(async () => {
  browser = await launchChromium();
  proxy = await startProxy(stack().baseUrl);
  sites.stub = await seedSite(stack(), 'stub', [
    { event: 'page_viewed' },
    { event: 'signup_started' },
  ]);
  sites.reset = await seedSite(stack(), 'reset', [
    { event: 'landing_viewed' },
    { event: 'order_placed' },
  ]);
  sites.retry = await seedSite(stack(), 'retry', [{ event: 'plan_selected' }]);
  sites.backoff = await seedSite(stack(), 'backoff', [{ event: 'plan_selected' }]);
  sites.spa = await seedSite(stack(), 'spa', [{ event: 'page_viewed' }]);
  sites.prerender = await seedSite(stack(), 'prerender', [{ event: 'page_viewed' }]);
  const tag = (site: TestSite, attributes = '') =>
    trackerTag(proxy.origin, site.writeKey, attributes);

  // The stub page queues calls and only then adds the tag, 300 ms later, as a slow page would.
  // Escaped, since a literal "</script>" would end the inline script it sits in.
  const lateTag = JSON.stringify(tag(sites.stub!)).replace(/<\//g, '<\\/');
  webSite = await startWebSite({
    '/stub': html(
      'Stub',
      `${readmeSnippet('tracker-stub')}
       <script>
         goalstep.identify('user-stub', { plan: 'free' });
         goalstep.track('signup_started', { source: 'hero' });
         window.calledAt = Date.now();
         setTimeout(function () {
           var holder = document.createElement('div');
           holder.innerHTML = ${lateTag};
           var script = document.createElement('script');
           for (var attribute of holder.firstChild.attributes) {
             script.setAttribute(attribute.name, attribute.value);
           }
           document.head.appendChild(script);
         }, 300);
       </script>`,
    ),
    '/reset': html('Reset', tag(sites.reset!, 'data-auto-pageviews="false"')),
    '/retry': html('Retry', tag(sites.retry!, 'data-auto-pageviews="false"')),
    '/backoff': html('Backoff', tag(sites.backoff!, 'data-auto-pageviews="false"')),
    '/app': html('App', tag(sites.spa!)),
    '/prerendered': html('Prerendered', tag(sites.prerender!)),
  });
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await webSite?.close();
});

/** The site's events, each once, in the order of their event times. */
const eventsOf = (site: TestSite) =>
  distinctEvents(proxy)
    .filter((event) => batchOf(event.messageId)?.writeKey === site.writeKey)
    .sort((a, b) => a.timestamp.localeCompare(b.timestamp));
const batchOf = (messageId: string) =>
  sentBatches(proxy).find(({ batch }) => batch.some((event) => event.messageId === messageId));
const batchesOf = (site: TestSite): SentBatch[] =>
  sentBatches(proxy).filter((batch) => batch.writeKey === site.writeKey);
const label = (event: { type: string; event?: string }) => event.event ?? event.type;

async function openPage(path: string): Promise<Page> {
  const device = await newDevice(browser);
  const page = await device.newPage();
  await page.goto(`${webSite.origin}${path}`);
  return page;
}

describe('the tracker in Chromium', () => {
  it('replays calls queued by the README stub in order, at the time they were made', async () => {
    const page = await openPage('/stub');
    await page.waitForFunction(() => !Array.isArray((window as unknown as PageApi).goalstep));
    const calledAt = await page.evaluate(() => (window as unknown as PageApi).calledAt);

    await waitForStored(stack(), sites.stub!, 3);
    // The proxy records a request once goalstep's answer is back: a moment after it is stored.
    const events = await waitFor('the proxy to record the stub batches', () => {
      const seen = eventsOf(sites.stub!);
      return seen.length >= 3 ? seen : undefined;
    });
    // The page view is dated from when the page started loading, so it comes first.
    expect(events.map(label)).toEqual(['page', 'identify', 'signup_started']);
    expect(events[2]).toMatchObject({ userId: 'user-stub', properties: { source: 'hero' } });
    expect(events[1]?.traits).toEqual({ plan: 'free' });
    // Made before the tracker existed (it was added 300 ms later), and dated then.
    expect(Date.parse(events[2]!.timestamp)).toBeLessThanOrEqual(calledAt);
    expect(Date.parse(events[0]!.timestamp)).toBeLessThanOrEqual(Date.parse(events[1]!.timestamp));
    const report = await freshReport(stack(), sites.stub!);
    expect(report.steps.map((step) => step.count)).toEqual([1, 1]);
    await page.context().close();
  });

  it('gives the next person a new device id after reset(): two users never fuse', async () => {
    const page = await openPage('/reset');

    // User A orders and logs out; user B browses anonymously, logs in and orders. 20 ms apart,
    // so that the order of the event times is unambiguous.
    const ids = await page.evaluate(async () => {
      const { goalstep } = window as unknown as PageApi;
      const pause = () => new Promise((done) => setTimeout(done, 20));
      goalstep.identify('user-a');
      await pause();
      goalstep.track('order_placed');
      await pause();
      const before = goalstep.user();
      goalstep.reset();
      const after = goalstep.user();
      const stored = localStorage.getItem('goalstep.uid');
      await pause();
      goalstep.track('landing_viewed');
      await pause();
      goalstep.identify('user-b');
      await pause();
      goalstep.track('order_placed');
      return { before, after, stored };
    });

    expect(ids.after.anonymousId).not.toBe(ids.before.anonymousId);
    expect(ids.after.userId).toBeNull();
    expect(ids.stored).toBeNull();
    await waitForStored(stack(), sites.reset!, 5);
    const events = eventsOf(sites.reset!);
    expect(events.map((event) => [label(event), event.anonymousId, event.userId ?? null])).toEqual([
      ['identify', ids.before.anonymousId, 'user-a'],
      ['order_placed', ids.before.anonymousId, 'user-a'],
      ['landing_viewed', ids.after.anonymousId, null],
      ['identify', ids.after.anonymousId, 'user-b'],
      ['order_placed', ids.after.anonymousId, 'user-b'],
    ]);
    // User B's anonymous landing counts for B. Had the device id survived the logout, it would
    // count for A (A's link is the latest before it), and the funnel would read [1, 0].
    const report = await freshReport(stack(), sites.reset!);
    expect(report.steps.map((step) => step.count)).toEqual([1, 1]);
    await page.context().close();
  });

  it('starts a new device id when another user identifies without a reset', async () => {
    const page = await openPage('/reset');

    const ids = await page.evaluate(() => {
      const { goalstep } = window as unknown as PageApi;
      goalstep.identify('user-c');
      const first = goalstep.user();
      goalstep.identify('user-c');
      const same = goalstep.user();
      goalstep.identify('user-d');
      return { first, same, next: goalstep.user() };
    });

    expect(ids.same).toEqual(ids.first);
    expect(ids.next.userId).toBe('user-d');
    expect(ids.next.anonymousId).not.toBe(ids.first.anonymousId);
    await page.context().close();
  });

  it('retries a batch answered 503 with the same message ids until it is stored', async () => {
    proxy.failNext('reject', 'reject');
    const page = await openPage('/retry');

    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('plan_selected'));

    await waitForStored(stack(), sites.retry!, 1);
    const batches = batchesOf(sites.retry!);
    expect(batches.map(({ request }) => request.status)).toEqual([503, 503, 200]);
    const ids = batches.map(({ batch }) => batch.map((event) => event.messageId));
    expect(ids[1]).toEqual(ids[0]);
    expect(ids[2]).toEqual(ids[0]);
    // Backoff: about 1 s, then about 2 s (each ±25 %); sentAt is stamped at each attempt.
    const [first, second, third] = batches.map(({ request }) => request.at);
    expect(second! - first!).toBeGreaterThanOrEqual(700);
    expect(third! - second!).toBeGreaterThanOrEqual(1_400);
    expect(Date.parse(batches[2]!.sentAt)).toBeGreaterThan(Date.parse(batches[0]!.sentAt));
    await page.context().close();
  });

  it('waits the backoff after a failure even if an event queued during the send', async () => {
    proxy.failNext('held-reject');
    const page = await openPage('/backoff');
    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('plan_selected'));
    const release = await proxy.held();

    // Queued while the first batch is in flight: its 0.5 s batching timer is still pending when
    // the 503 arrives, and must not cut the 1 s (±25 %) backoff short.
    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('plan_selected'));
    await page.waitForTimeout(100);
    release();

    await waitForStored(stack(), sites.backoff!, 2);
    const batches = batchesOf(sites.backoff!);
    expect(batches.map(({ request }) => request.status)).toEqual([503, 200]);
    expect(batches[1]!.batch).toHaveLength(2);
    expect(batches[1]!.request.at - batches[0]!.request.at).toBeGreaterThanOrEqual(700);
    await page.context().close();
  });

  it('counts once an event stored before a 503 answer made the browser resend it', async () => {
    proxy.failNext('lose-ack');
    const page = await openPage('/retry');
    const before = batchesOf(sites.retry!).length;

    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('plan_selected'));

    const batches = await waitFor('the retry after the lost acknowledgement', () => {
      const sent = batchesOf(sites.retry!).slice(before);
      return sent.length >= 2 ? sent : undefined;
    });
    expect(batches.map(({ request }) => request.status)).toEqual([503, 200]);
    expect(batches[1]!.batch.map((event) => event.messageId)).toEqual(
      batches[0]!.batch.map((event) => event.messageId),
    );
    // The first test's event and this one: two stored, each counted once.
    await waitForStored(stack(), sites.retry!, 2);
    const report = await freshReport(stack(), sites.retry!);
    expect(report.steps.map((step) => step.count)).toEqual([2]);
    await page.context().close();
  });

  it('counts single-page-app history navigations as page views, not hash changes', async () => {
    const page = await openPage('/app');

    await page.evaluate(() => history.pushState({}, '', '/app/plans?tier=pro'));
    await page.evaluate(() => {
      location.hash = '#faq';
    });
    await page.evaluate(() => history.back());
    await page.waitForURL(`${webSite.origin}/app/plans?tier=pro`);
    await page.evaluate(() => history.back());
    await page.waitForURL(`${webSite.origin}/app`);

    await waitForStored(stack(), sites.spa!, 3);
    const events = eventsOf(sites.spa!);
    expect(events.map((event) => event.properties?.path)).toEqual(['/app', '/app/plans', '/app']);
    expect(events[1]?.properties).toMatchObject({
      search: '?tier=pro',
      referrer: `${webSite.origin}/app`,
    });
    expect(events[2]?.properties?.referrer).toBe(`${webSite.origin}/app/plans?tier=pro`);
    await page.context().close();
  });

  it('sends nothing while prerendered, and the page view once the page is shown', async () => {
    // Headless Chromium does not prerender speculation rules here, so the page is told it is
    // prerendered the way the browser would tell it: document.prerendering, then the event.
    const device = await newDevice(browser);
    await device.addInitScript(() => {
      const state = window as unknown as { prerendered: boolean };
      state.prerendered = true;
      Object.defineProperty(Document.prototype, 'prerendering', {
        get: () => state.prerendered,
      });
    });
    const page = await device.newPage();
    const requestsBefore = proxy.seen.length;

    await page.goto(`${webSite.origin}/prerendered`);
    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('while_prerendered'));
    await new Promise((done) => setTimeout(done, 1_500));
    const whilePrerendered = proxy.seen.slice(requestsBefore).filter((r) => r.method === 'POST');
    const activatedAt = await page.evaluate(() => {
      const at = Date.now();
      (window as unknown as { prerendered: boolean }).prerendered = false;
      document.dispatchEvent(new Event('prerenderingchange'));
      return at;
    });

    expect(whilePrerendered).toEqual([]);
    await waitForStored(stack(), sites.prerender!, 2);
    const events = eventsOf(sites.prerender!);
    expect(events.map(label)).toEqual(['while_prerendered', 'page']);
    expect(Date.parse(events[1]!.timestamp)).toBeGreaterThanOrEqual(activatedAt);
    await device.close();
  });
});
