/**
 * The tracker's privacy modes in Chromium against a real stack: consent mode stores nothing
 * until `consent(true)`, and a browser sending Global Privacy Control or Do Not Track sends and
 * stores nothing unless the site turned that off.
 */
import type { Browser, BrowserContext } from 'playwright-core';
import {
  html,
  launchChromium,
  newDevice,
  readmeSnippet,
  seedSite,
  sentBatches,
  startProxy,
  startWebSite,
  storedState,
  trackerTag,
  waitFor,
  type Closable,
  type Proxy,
  type SentEvent,
  type TestSite,
} from './tracker-harness';
import { useTestStack } from './test-stack';

const stack = useTestStack('tracker-privacy');
let browser: Browser;
let proxy: Proxy;
let webSite: Closable;
let consentSite: TestSite;
let signalSite: TestSite;

interface PageApi {
  goalstep: {
    track(event: string): void;
    consent(granted: boolean): void;
    user(): { anonymousId: string; userId: string | null };
  };
}

beforeAll(async () => {
  browser = await launchChromium();
  proxy = await startProxy(stack().baseUrl);
  consentSite = await seedSite(stack(), 'consent', [{ event: 'page_viewed' }]);
  signalSite = await seedSite(stack(), 'signals', [{ event: 'page_viewed' }]);
  const stub = readmeSnippet('tracker-stub');
  webSite = await startWebSite({
    // A returning visitor's consent banner already knows the answer and says so at once.
    '/consent': html(
      'Consent',
      `${stub}<script>
         if (location.search === '?returning') goalstep.consent(true);
       </script>${trackerTag(proxy.origin, consentSite.writeKey, 'data-consent="required"')}`,
    ),
    '/signals': html('Signals', trackerTag(proxy.origin, signalSite.writeKey)),
    '/signals-ignored': html(
      'Signals ignored',
      trackerTag(proxy.origin, signalSite.writeKey, 'data-respect-dnt="false"'),
    ),
  });
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await webSite?.close();
});

/** The site's events goalstep acknowledged, each once (a resent event has the same id). */
const eventsOf = (site: TestSite): SentEvent[] => {
  const byId = new Map<string, SentEvent>();
  for (const { writeKey, request, batch } of sentBatches(proxy)) {
    if (writeKey !== site.writeKey || request.status !== 200) continue;
    for (const event of batch) if (!byId.has(event.messageId)) byId.set(event.messageId, event);
  }
  return [...byId.values()].sort((a, b) => a.timestamp.localeCompare(b.timestamp));
};

/** Loads `path` and resolves with the page view it sent (the `n`-th of the site). */
async function pageView(context: BrowserContext, path: string, n: number): Promise<SentEvent> {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${webSite.origin}${path}`);
  return waitFor(`page view ${n}`, () => eventsOf(consentSite).filter((e) => e.type === 'page')[n]);
}

const goalstepKeys = (storage: Record<string, string>) =>
  Object.keys(storage).filter((key) => key.startsWith('goalstep.'));

describe('consent mode', () => {
  it('counts without cookies or storage until consent(true), then keeps the id', async () => {
    const device = await newDevice(browser);

    // Before consent: page views are sent, under an id that lives only as long as the page.
    const first = await pageView(device, '/consent', 0);
    const second = await pageView(device, '/consent', 1);
    expect(second.anonymousId).not.toBe(first.anonymousId);
    const page = device.pages()[0]!;
    expect(await storedState(page)).toEqual({ cookies: [], local: {}, session: {} });

    // Consent: the current id is stored and used from then on.
    await page.evaluate(() => (window as unknown as PageApi).goalstep.consent(true));
    const stored = await storedState(page);
    expect(stored.local['goalstep.aid']).toBe(second.anonymousId);
    expect(stored.cookies).toEqual([]);

    // The next visit: the banner grants consent before the tracker loads; its page view is sent
    // under the stored id.
    const returning = await pageView(device, '/consent?returning', 2);
    expect(returning.anonymousId).toBe(second.anonymousId);

    // Withdrawn: everything the tracker stored is gone, and nothing is stored again.
    await page.evaluate(() => (window as unknown as PageApi).goalstep.consent(false));
    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('after_withdrawal'));
    await waitFor('the event after withdrawal', () =>
      eventsOf(consentSite).find((event) => event.event === 'after_withdrawal'),
    );
    const after = await storedState(page);
    expect(goalstepKeys(after.local)).toEqual([]);
    expect(goalstepKeys(after.session)).toEqual([]);
    await device.close();
  });
});

describe('consent after a beacon', () => {
  it('keeps an event sent by beacon on its device when consent moves the queue', async () => {
    const device = await newDevice(browser);
    const page = await device.newPage();
    // An earlier visit gave consent: its device id is stored.
    await page.goto(`${webSite.origin}/consent?returning`);
    const stored = await page.evaluate(() => (window as unknown as PageApi).goalstep.user());
    // This visit's banner has not answered yet: the tracker counts under a per-page id. The tab
    // is hidden at once (its queue goes by beacon and stays queued), then consent comes.
    await page.goto(`${webSite.origin}/consent`);
    const before = await page.evaluate(() => {
      const api = (window as unknown as PageApi).goalstep;
      api.track('hidden_then_consented');
      const state = (value: string) =>
        Object.defineProperty(document, 'visibilityState', {
          configurable: true,
          get: () => value,
        });
      state('hidden');
      document.dispatchEvent(new Event('visibilitychange'));
      state('visible');
      const ephemeral = api.user().anonymousId;
      api.consent(true);
      return ephemeral;
    });
    expect(before).not.toBe(stored.anonymousId);
    // Sent twice (the beacon, then the queue's own send): both under the per-page id, so the
    // server, which keys an event by device and message id, counts it once.
    const sends = await waitFor('the beacon and the queued send', () => {
      const found = sentBatches(proxy).flatMap(({ batch }) =>
        batch.filter((event) => event.event === 'hidden_then_consented'),
      );
      return found.length >= 2 ? found : undefined;
    });
    expect(new Set(sends.map((event) => event.messageId)).size).toBe(1);
    expect(sends.map((event) => event.anonymousId)).toEqual(sends.map(() => before));
    await device.close();
  });
});

describe('Do Not Track and Global Privacy Control', () => {
  /** A device whose browser sends the signal (set in the page, as the browser would). */
  async function deviceWith(signal: 'gpc' | 'dnt'): Promise<BrowserContext> {
    const device = await newDevice(browser);
    await device.addInitScript((which) => {
      if (which === 'gpc') {
        Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
      } else {
        Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' });
      }
    }, signal);
    return device;
  }

  /** Visits, tracks, leaves the page (so a beacon would go) and waits past every batch delay. */
  async function visit(device: BrowserContext, path: string) {
    const page = await device.newPage();
    await page.goto(`${webSite.origin}${path}`);
    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('signal_test'));
    await page.goto('about:blank');
    await new Promise((done) => setTimeout(done, 1_500));
    return page;
  }

  for (const signal of ['gpc', 'dnt'] as const) {
    it(`sends and stores nothing when the browser sends ${signal.toUpperCase()}`, async () => {
      const device = await deviceWith(signal);
      const requestsBefore = proxy.seen.length;

      await visit(device, '/signals');

      expect(proxy.seen.slice(requestsBefore).filter((r) => r.method === 'POST')).toEqual([]);
      // The storage of the site's origin, read from a page of it without the tag.
      const page = await device.newPage();
      await page.goto(`${webSite.origin}/no-tag`);
      expect(await storedState(page)).toEqual({ cookies: [], local: {}, session: {} });
      await device.close();
    });
  }

  it('tracks a browser sending GPC when the site set data-respect-dnt="false"', async () => {
    const device = await deviceWith('gpc');
    const before = eventsOf(signalSite).length;

    await visit(device, '/signals-ignored');

    const sent = await waitFor('the events of the visit', () => {
      const events = eventsOf(signalSite).slice(before);
      return events.length >= 2 ? events : undefined;
    });
    expect(sent.map((event) => event.event ?? event.type)).toEqual(['page', 'signal_test']);
    await device.close();
  });
});

describe('blocked storage', () => {
  it('keeps counting from memory, with a new device id per page load', async () => {
    // What "block all cookies" does to a page: every storage access throws.
    const device = await newDevice(browser);
    await device.addInitScript(() => {
      for (const name of ['localStorage', 'sessionStorage']) {
        Object.defineProperty(window, name, {
          get: () => {
            throw new DOMException('blocked', 'SecurityError');
          },
        });
      }
    });
    const page = await device.newPage();
    const before = eventsOf(signalSite).length;

    await page.goto(`${webSite.origin}/signals-ignored`);
    await page.evaluate(() => (window as unknown as PageApi).goalstep.track('blocked_storage'));
    await page.goto(`${webSite.origin}/signals-ignored`);

    const sent = await waitFor('three events', () => {
      const events = eventsOf(signalSite).slice(before);
      return events.length >= 3 ? events : undefined;
    });
    expect(sent.map((event) => event.event ?? event.type)).toEqual([
      'page',
      'blocked_storage',
      'page',
    ]);
    expect(sent[1]!.anonymousId).toBe(sent[0]!.anonymousId);
    expect(sent[2]!.anonymousId).not.toBe(sent[0]!.anonymousId);
    await device.close();
  });
});
