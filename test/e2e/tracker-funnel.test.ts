/**
 * The one-line tag on a real web site: headless Chromium loads pages from a second origin whose
 * tag points at a goalstep stack (through a recording proxy), clicks through a checkout funnel
 * (one click unloads the page before its event is sent, one leaves for another origin) and
 * logs in; the report must show exactly that one person and those steps. A second device that
 * logs in as the same user is the same person.
 */
import type { Browser } from 'playwright-core';
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
  waitForStored,
  type Closable,
  type Proxy,
  type TestSite,
} from './tracker-harness';
import { useTestStack } from './test-stack';

const stack = useTestStack('tracker-funnel');
let browser: Browser;
let proxy: Proxy;
let webSite: Closable;
let site: TestSite;

const STEPS = [
  { event: 'page_viewed', where: [{ property: 'path', op: 'eq', value: '/' }] },
  { event: 'product_added_to_cart' },
  { event: 'checkout_started' },
  { event: 'checkout_completed' },
];

beforeAll(async () => {
  browser = await launchChromium();
  proxy = await startProxy(stack().baseUrl);
  site = await seedSite(stack(), 'shop', STEPS);
  const head = readmeSnippet('tracker-stub') + trackerTag(proxy.origin, site.writeKey);
  // The payment page lives on another origin without the tag, as a payment provider's would.
  const paymentPage = `${stack().baseUrl}/healthz`;
  webSite = await startWebSite({
    '/': html(
      'Shop',
      head,
      `<button id="add" onclick="goalstep.track('product_added_to_cart', { sku: 'duvet' })">
         Add to cart</button>
       <button id="checkout"
         onclick="goalstep.track('checkout_started'); location.href = '/checkout'">
         Checkout</button>`,
    ),
    '/checkout': html(
      'Checkout',
      head,
      `<button id="login" onclick="goalstep.identify('user-42', { plan: 'pro' })">Log in</button>
       <button id="pay" onclick="goalstep.track('checkout_completed', { total: 120 });
         location.href = '${paymentPage}'">Pay</button>`,
    ),
  });
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await webSite?.close();
});

describe('the one-line tag in Chromium, on a second origin', () => {
  it('reports exactly the one visitor and the four steps they took', async () => {
    const device = await newDevice(browser, { locale: 'de-DE', timezoneId: 'Europe/Berlin' });
    const page = await device.newPage();

    // Land from a newsletter, add to cart, then check out: the click's event is still waiting
    // for its batch when the page unloads.
    await page.goto(`${webSite.origin}/?utm_source=newsletter&utm_campaign=spring`);
    await page.click('#add');
    await page.click('#checkout');
    await page.waitForURL(`${webSite.origin}/checkout`);
    await page.click('#login');
    // Pay leaves for another origin at once: only the beacon can still deliver this event.
    await page.click('#pay');
    await page.waitForURL(/\/healthz$/);

    // Six events: two page views, two clicks on /, the login and the payment.
    await waitForStored(stack(), site, 6);
    const report = await freshReport(stack(), site);
    expect(report.steps.map((step) => step.count)).toEqual([1, 1, 1, 1]);
    expect(report.entered).toBe(1);
    expect(report.completed).toBe(1);

    const events = distinctEvents(proxy);
    expect(events.map((event) => event.type === 'track' ? event.event : event.type)).toEqual([
      'page',
      'product_added_to_cart',
      'checkout_started',
      'page',
      'identify',
      'checkout_completed',
    ]);
    // One device id throughout; the user id from the login on.
    expect(new Set(events.map((event) => event.anonymousId)).size).toBe(1);
    expect(events.map((event) => event.userId ?? null)).toEqual([
      null,
      null,
      null,
      null,
      'user-42',
      'user-42',
    ]);
    expect(events[4]?.traits).toEqual({ plan: 'pro' });
    await device.close();
  });

  it('sent the unloading clicks by beacon, as text/plain, without a preflight', () => {
    const batches = sentBatches(proxy);
    const sentWith = (name: string) =>
      batches.filter(({ batch }) => batch.some((event) => event.event === name));
    const mode = (batch: { request: { headers: Record<string, unknown> } } | undefined) =>
      batch?.request.headers['sec-fetch-mode'];

    // sendBeacon with a text body is a no-cors request; the tracker's fetch is a cors one. An
    // event still queued when its page unloads leaves by beacon; on a loaded machine the batch
    // timer (500 ms) can win the race, and then its fetch must have been acknowledged. Either
    // way it was delivered, and the report above counts it once.
    for (const name of ['checkout_started', 'checkout_completed']) {
      const [first] = sentWith(name);
      const viaBeacon = mode(first) === 'no-cors';
      expect(viaBeacon || (mode(first) === 'cors' && first?.request.status === 200)).toBe(true);
      // What went by beacon stayed queued (its answer cannot be read): a later page sends it
      // again with the same message id.
      if (viaBeacon && name === 'checkout_started') {
        expect(sentWith(name).length).toBeGreaterThanOrEqual(2);
      }
    }
    expect(proxy.seen.filter((request) => request.method === 'OPTIONS')).toEqual([]);
    for (const { request, sentAt, writeKey } of batches) {
      expect(request.headers['content-type']).toMatch(/^text\/plain/);
      expect(request.headers.origin).toBe(webSite.origin);
      expect(request.status).toBe(200);
      expect(Date.parse(sentAt)).not.toBeNaN();
      expect(writeKey).toBe(site.writeKey);
    }
  });

  it('gave every event the context that breakdowns read', () => {
    const events = distinctEvents(proxy);
    const landing = events[0];
    const payment = events[5];

    expect(landing?.properties).toMatchObject({ path: '/', title: 'Shop' });
    expect(landing?.context.page.url).toBe(
      `${webSite.origin}/?utm_source=newsletter&utm_campaign=spring`,
    );
    // The landing page's campaign is kept for the session, on the next page too.
    expect(payment?.context.campaign).toEqual({ source: 'newsletter', name: 'spring' });
    expect(payment?.context.page).toMatchObject({ path: '/checkout', title: 'Checkout' });
    expect(payment?.context.page.referrer).toBe(landing?.context.page.url);
    expect(payment?.context).toMatchObject({
      locale: 'de-DE',
      timezone: 'Europe/Berlin',
      screen: { width: 1280, height: 800 },
    });
  });

  it('stitches a second device that logs in as the same user into the same person', async () => {
    const device = await newDevice(browser);
    const page = await device.newPage();

    await page.goto(`${webSite.origin}/`);
    await page.evaluate(() => {
      (window as unknown as { goalstep: { identify(id: string): void } }).goalstep.identify(
        'user-42',
      );
    });

    // Its page view and identify: 8 events. Still one person who entered.
    await waitForStored(stack(), site, 8);
    const report = await freshReport(stack(), site);
    expect(report.entered).toBe(1);
    expect(report.steps.map((step) => step.count)).toEqual([1, 1, 1, 1]);
    const secondDevice = distinctEvents(proxy).slice(6);
    expect(secondDevice.map((event) => event.type)).toEqual(['page', 'identify']);
    expect(secondDevice[0]?.anonymousId).not.toBe(distinctEvents(proxy)[0]?.anonymousId);
    await device.close();
  });

  it('counts a third device that never logs in as another person', async () => {
    const device = await newDevice(browser);
    const page = await device.newPage();

    await page.goto(`${webSite.origin}/`);

    await waitForStored(stack(), site, 9);
    const report = await freshReport(stack(), site);
    expect(report.entered).toBe(2);
    expect(report.steps.map((step) => step.count)).toEqual([2, 1, 1, 1]);
    await device.close();
  });
});
