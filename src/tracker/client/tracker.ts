/**
 * goalstep's browser tracker, served bundled and minified as `/t.js` (see docs/TRACKER.md).
 * Plain browser code: it runs on the customer's page, never in the Worker, and imports nothing.
 */
import type { QueuedCall, TrackerApi, TrackerEvent } from './types';

const VERSION = '1';
/** Events per request; the keepalive/beacon quota is 64 KB across a page's pending requests. */
const BATCH_EVENTS = 20;
const BATCH_BYTES = 48_000;
/** The server rejects larger events (`event_too_large`, 32 KB), so they are not queued. */
const EVENT_BYTES = 32_000;
/** Bounded queue: beyond it the oldest unsent events are dropped. */
const QUEUE_MAX = 200;
const BATCH_DELAY_MS = 500;
const BACKOFF_MAX_MS = 60_000;
const PREFIX = 'goalstep.';

type Props = Record<string, unknown>;
type Area = 'localStorage' | 'sessionStorage';

((w: Window & { goalstep?: TrackerApi | QueuedCall[] }) => {
  const d = document as Document & { prerendering?: boolean };
  const nav = navigator as Navigator & { globalPrivacyControl?: boolean };
  const stub = w.goalstep;
  // Loaded twice (two tags): the first copy keeps running, the second does nothing.
  if (stub && !Array.isArray(stub)) return;

  const script = d.currentScript as HTMLScriptElement | null;
  const data = script?.dataset ?? {};
  const base = data.api || (script ? new URL(script.src).origin : location.origin);
  const endpoint = `${base.replace(/\/+$/, '')}/v1/batch`;
  const writeKey = data.writeKey;
  const optedOut =
    data.respectDnt !== 'false' && (nav.doNotTrack === '1' || nav.globalPrivacyControl === true);
  let consented = data.consent !== 'required';

  /** Reads (value undefined), writes or removes (null) a key; memory only when not allowed. */
  const store = (area: Area, key: string, value?: string | null): string | null => {
    if (!consented || optedOut) return null;
    try {
      const storage = w[area];
      if (value === undefined) return storage.getItem(PREFIX + key);
      if (value === null) storage.removeItem(PREFIX + key);
      else storage.setItem(PREFIX + key, value);
    } catch {
      // Storage blocked (privacy settings, sandboxed frame, quota): memory is the fallback.
    }
    return null;
  };
  const parse = <T>(text: string | null, fallback: T): T => {
    try {
      return text ? (JSON.parse(text) as T) : fallback;
    } catch {
      return fallback;
    }
  };

  const bytesOf = (value: unknown) => new Blob([JSON.stringify(value)]).size;
  const uuid = (): string => {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6]! & 15) | 64;
    bytes[8] = (bytes[8]! & 63) | 128;
    const hex = Array.from(bytes, (byte) => (byte + 256).toString(16).slice(1)).join('');
    return hex.replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
  };

  // Identity: the device id in localStorage, the queue of unacknowledged events per tab.
  let anonymousId = store('localStorage', 'aid') || uuid();
  let userId = store('localStorage', 'uid');
  let queue = parse<TrackerEvent[]>(store('sessionStorage', 'queue'), []);
  const sending = new Set<string>();
  const save = () => {
    store('localStorage', 'aid', anonymousId);
    store('localStorage', 'uid', userId);
    store('sessionStorage', 'queue', JSON.stringify(queue));
  };

  // Campaign: the landing page's utm_* parameters, kept for the session.
  const campaign: Props = parse(store('sessionStorage', 'utm'), {});
  const search = new URLSearchParams(location.search);
  if ([...search.keys()].some((key) => key.startsWith('utm_'))) {
    for (const key of Object.keys(campaign)) delete campaign[key];
    search.forEach((value, key) => {
      if (key.startsWith('utm_')) campaign[key === 'utm_campaign' ? 'name' : key.slice(4)] = value;
    });
    store('sessionStorage', 'utm', JSON.stringify(campaign));
  }

  // The referrer of a single-page-app navigation is the page the app came from.
  let referrer = d.referrer;
  let lastUrl = '';
  const pageFacts = () => ({
    path: location.pathname,
    referrer,
    search: location.search,
    title: d.title,
    url: location.href,
  });

  let replayAt: number | undefined;
  const enqueue = (fields: Partial<TrackerEvent>, at = replayAt ?? Date.now()) => {
    if (optedOut) return;
    const event = {
      ...fields,
      messageId: uuid(),
      timestamp: new Date(at).toISOString(),
      anonymousId,
      ...(userId ? { userId } : {}),
      context: {
        page: pageFacts(),
        campaign: { ...campaign },
        screen: { width: screen.width, height: screen.height },
        locale: nav.language,
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        library: { name: 'goalstep.js', version: VERSION },
      },
    } as TrackerEvent;
    if (bytesOf(event) > EVENT_BYTES) return;
    queue.push(event);
    if (queue.length > QUEUE_MAX) queue = queue.slice(-QUEUE_MAX);
    save();
    schedule(BATCH_DELAY_MS);
  };

  // Delivery: one fetch at a time; a batch leaves the queue only once acknowledged.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let backoff = 0;
  const schedule = (ms: number) => {
    timer ??= setTimeout(() => {
      timer = undefined;
      flush();
    }, ms);
  };
  const body = (batch: TrackerEvent[]) =>
    JSON.stringify({ batch, sentAt: new Date().toISOString(), writeKey });
  /** The next events to send, within the count and byte limits. */
  const take = (events: TrackerEvent[]) => {
    const batch: TrackerEvent[] = [];
    let bytes = 100;
    for (const event of events) {
      bytes += bytesOf(event) + 1;
      if (batch.length === BATCH_EVENTS || (batch.length > 0 && bytes > BATCH_BYTES)) break;
      batch.push(event);
    }
    return batch;
  };
  const flush = () => {
    if (sending.size > 0 || d.prerendering || queue.length === 0) return;
    const batch = take(queue);
    for (const event of batch) sending.add(event.messageId);
    const settle = (acknowledged: boolean) => {
      sending.clear();
      if (acknowledged) {
        const sent = new Set(batch.map((event) => event.messageId));
        queue = queue.filter((event) => !sent.has(event.messageId));
        save();
        backoff = 0;
        schedule(0);
      } else {
        backoff = Math.min(BACKOFF_MAX_MS, backoff * 2 || 1000);
        // An event queued while this batch was in flight left a batching timer (0.5 s) that
        // would fire before the backoff: the retry waits the backoff, and that event with it.
        clearTimeout(timer);
        timer = undefined;
        schedule(backoff * (0.75 + Math.random() / 2));
      }
    };
    // text/plain keeps it a simple request: no CORS preflight. 4xx other than 429 means the
    // batch can never be taken as sent (bad key, bad body): retrying would not help.
    fetch(endpoint, {
      method: 'POST',
      body: body(batch),
      headers: { 'Content-Type': 'text/plain' },
      keepalive: true,
      credentials: 'omit',
    }).then(
      (response) => settle(response.status < 500 && response.status !== 429),
      () => settle(false),
    );
  };
  /** The page may be going away: what was not sent yet goes by beacon; it stays queued, so the
   * next page of this tab sends it again (same device and message id) and the server
   * acknowledges it as a duplicate. */
  const beaconed = new Set<string>();
  const beacon = () => {
    // Leaving fires both visibilitychange and pagehide: each event goes by beacon once.
    const waiting = (event: TrackerEvent) =>
      !sending.has(event.messageId) && !beaconed.has(event.messageId);
    let rest = queue.filter(waiting);
    while (rest.length > 0 && !d.prerendering) {
      const batch = take(rest);
      for (const event of batch) beaconed.add(event.messageId);
      nav.sendBeacon(endpoint, body(batch));
      rest = rest.slice(batch.length);
    }
  };
  addEventListener('pagehide', beacon);
  d.addEventListener('visibilitychange', () => {
    if (d.visibilityState === 'hidden') beacon();
  });

  const page = (name?: string | Props, properties?: Props, at?: number) => {
    if (typeof name === 'object') [name, properties] = [undefined, name];
    enqueue(
      { type: 'page', name: name || 'page_viewed', properties: { ...pageFacts(), ...properties } },
      at,
    );
    lastUrl = location.href;
  };
  const reset = () => {
    userId = null;
    anonymousId = uuid();
    save();
  };

  const api: TrackerApi = {
    track: (event, properties) => enqueue({ type: 'track', event, properties }),
    page: (name, properties) => page(name, properties),
    identify(id, traits) {
      if (typeof id === 'object' && id) [id, traits] = [undefined, id];
      const next = id == null ? userId : String(id);
      // Another user on a device already identified: a new device id, so the two never fuse.
      if (userId && next !== userId) reset();
      userId = next;
      save();
      enqueue({ type: 'identify', traits });
    },
    alias: (id, previousId = userId ?? anonymousId) =>
      enqueue({ type: 'alias', userId: String(id), previousId }),
    reset,
    consent(granted) {
      if (!granted) {
        for (const key of ['aid', 'uid']) store('localStorage', key, null);
        for (const key of ['queue', 'utm']) store('sessionStorage', key, null);
        consented = false;
        return;
      }
      if (consented) return;
      consented = true;
      // A returning visitor keeps the device id stored at an earlier consent; events still
      // queued from before this call move over to it, except those already sent (in flight,
      // or by beacon): the server keys an event by device and message id, so one re-sent under
      // another device would count twice.
      const stored = store('localStorage', 'aid');
      if (stored) {
        for (const event of queue) {
          const sent = sending.has(event.messageId) || beaconed.has(event.messageId);
          if (event.anonymousId === anonymousId && !sent) event.anonymousId = stored;
        }
        anonymousId = stored;
      }
      userId ??= store('localStorage', 'uid');
      store('sessionStorage', 'utm', JSON.stringify(campaign));
      save();
    },
    user: () => ({ anonymousId, userId }),
  };

  // Single-page apps: a history navigation to another path or query is a page view.
  const navigated = () => {
    if (data.autoPageviews !== 'false' && location.href.split('#')[0] !== lastUrl.split('#')[0]) {
      referrer = lastUrl;
      page();
    }
  };
  const pushState = history.pushState;
  history.pushState = function (...args) {
    pushState.apply(this, args);
    navigated();
  };
  addEventListener('popstate', navigated);
  // Back to a page kept in the back/forward cache: the visitor sees it again.
  addEventListener('pageshow', (event) => {
    if (event.persisted && data.autoPageviews !== 'false') page();
  });

  // Nothing is sent while the page is prerendered; the page view counts once it is shown, and
  // otherwise from when the page started loading (before any call the stub queued).
  const prerendered = d.prerendering;
  const start = () => {
    if (data.autoPageviews !== 'false') {
      page(undefined, undefined, prerendered ? undefined : performance.timeOrigin);
    }
    // Now, not after the batch delay: the queue may hold what the last page could not send.
    flush();
  };
  // Calls made before the script loaded, in order, at the time they were made; first, so that
  // a consent or identify they hold applies to the page view too.
  w.goalstep = api;
  for (const [method, args, at] of stub ?? []) {
    replayAt = at;
    const call = api[method] as ((...values: unknown[]) => void) | undefined;
    if (typeof call === 'function') call(...args);
  }
  replayAt = undefined;

  if (prerendered) d.addEventListener('prerenderingchange', start, { once: true });
  else start();
})(window);
