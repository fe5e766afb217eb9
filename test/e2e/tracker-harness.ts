/**
 * What the browser tests of the tracker share: headless Chromium, a second-origin web site, a
 * recording proxy in front of the goalstep stack that can answer 503 on request, and site
 * seeding and report reading through goalstep's own HTTP API.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { freePort, repoRoot } from '../../scripts/lib/stack.mjs';
import { DESKTOP_USER_AGENT, launchBrowser } from './lib/browser';

/** Starts Debian's Chromium headless. */
export const launchChromium = launchBrowser;

/**
 * A browser context as a visitor's device. The user agent is a desktop Chrome's rather than
 * "HeadlessChrome": these tests are about the tracker, not about the server's bot rules.
 */
export function newDevice(
  browser: Browser,
  options: { locale?: string; timezoneId?: string } = {},
) {
  return browser.newContext({
    userAgent: DESKTOP_USER_AGENT,
    viewport: { width: 1280, height: 800 },
    ...options,
  });
}

/** Everything the page's origin has stored: cookies, localStorage, sessionStorage. */
export async function storedState(page: Page) {
  const storage = await page.evaluate(() => ({
    local: Object.fromEntries(Object.entries(localStorage)),
    session: Object.fromEntries(Object.entries(sessionStorage)),
  }));
  return { cookies: await page.context().cookies(page.url()), ...storage };
}

/** A fenced block of README.md that follows `<!-- marker -->`: the docs' snippets, tested. */
export function readmeSnippet(marker: string): string {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const match = new RegExp(`<!-- ${marker} -->\\n\`\`\`html\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (!match?.[1]) throw new Error(`no <!-- ${marker} --> html block in README.md`);
  return match[1];
}

/** The README's one-line tag, pointed at `origin` with `writeKey` and extra attributes. */
export function trackerTag(origin: string, writeKey: string, attributes = ''): string {
  return readmeSnippet('tracker-tag')
    .replace('http://localhost:8787', origin)
    .replace('wk_demo_local_development_key_0001', writeKey)
    .replace('></script>', `${attributes ? ` ${attributes}` : ''}></script>`);
}

export interface Closable {
  origin: string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  const port = await freePort(9900, 600);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', done);
  });
  return `http://127.0.0.1:${port}`;
}

const closeServer = (server: Server) =>
  new Promise<void>((done) => {
    server.closeAllConnections();
    server.close(() => done());
  });

/** A customer's web site on its own origin: `pages` maps a path to its HTML. */
export async function startWebSite(pages: Record<string, string>): Promise<Closable> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://site.invalid').pathname;
    const html = pages[path];
    response.writeHead(html === undefined ? 404 : 200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
    });
    response.end(html ?? 'not found');
  });
  return { origin: await listen(server), close: () => closeServer(server) };
}

/** The HTML page of a test site. */
export function html(title: string, head: string, body = ''): string {
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>${head}</head>` +
    `<body>${body}</body></html>`
  );
}

/** One request the proxy saw, with what it answered. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
  at: number;
}

/**
 * How the proxy treats one ingest POST: `reject` answers 503 without passing it on (storage
 * failed before anything was kept); `held-reject` does the same once the test releases it (a
 * slow failure, with the request in flight meanwhile); `lose-ack` passes it on, so goalstep
 * stores the events, and then answers 503 instead of goalstep's 200 (the acknowledgement was
 * lost).
 */
export type Fault = 'reject' | 'held-reject' | 'lose-ack';

export interface Proxy extends Closable {
  seen: SeenRequest[];
  /** Applies these faults, in order, to the next ingest POSTs. */
  failNext(...faults: Fault[]): void;
  /** Resolves when a `held-reject` request has arrived, with the function that answers it. */
  held(): Promise<() => void>;
}

const HOP_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'expect',
  'upgrade',
]);

/** Goalstep's own 503 body (src/ingest/ingest-request.ts) and its CORS answer for `origin`. */
function storageFailed(origin: string | undefined) {
  const cors: Record<string, string> = origin
    ? { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true' }
    : {};
  return {
    headers: { 'content-type': 'application/json', vary: 'Origin', ...cors },
    body: JSON.stringify({
      code: 'storage_unavailable',
      message: 'events could not be stored; retry later',
    }),
  };
}

/**
 * A proxy on 127.0.0.1 in front of the goalstep stack at `target`: it records every request and
 * can answer 503 to chosen ingest POSTs. This is the one fault-injection point of these tests;
 * goalstep's bindings are never touched.
 */
export async function startProxy(target: string): Promise<Proxy> {
  const seen: SeenRequest[] = [];
  const faults: Fault[] = [];
  let heldRelease: (() => void) | undefined;
  let heldWaiter: ((release: () => void) => void) | undefined;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const body = Buffer.concat(chunks);
      const method = request.method ?? 'GET';
      const path = request.url ?? '/';
      const fault = method === 'POST' && path.startsWith('/v1/') ? faults.shift() : undefined;
      const record = (status: number) =>
        seen.push({
          method,
          path,
          headers: request.headers,
          body: body.toString('utf8'),
          status,
          at: Date.now(),
        });

      if (fault === 'reject') {
        const answer = storageFailed(request.headers.origin);
        record(503);
        response.writeHead(503, answer.headers).end(answer.body);
        return;
      }
      if (fault === 'held-reject') {
        const answer = storageFailed(request.headers.origin);
        const release = () => {
          record(503);
          response.writeHead(503, answer.headers).end(answer.body);
        };
        if (heldWaiter) heldWaiter(release);
        else heldRelease = release;
        heldWaiter = undefined;
        return;
      }

      const headers: Array<[string, string]> = [];
      for (const [name, value] of Object.entries(request.headers)) {
        if (!HOP_HEADERS.has(name) && value !== undefined) headers.push([name, String(value)]);
      }
      try {
        const upstream = await fetch(`${target}${path}`, {
          method,
          headers,
          body: method === 'GET' || method === 'HEAD' ? undefined : body,
          redirect: 'manual',
        });
        const text = Buffer.from(await upstream.arrayBuffer());
        const status = fault === 'lose-ack' ? 503 : upstream.status;
        const out: Record<string, string> = {};
        upstream.headers.forEach((value, name) => {
          // fetch has already decoded the body; its length and encoding no longer apply.
          if (!['content-encoding', 'content-length', 'transfer-encoding'].includes(name)) {
            out[name] = value;
          }
        });
        record(status);
        response.writeHead(status, out).end(fault === 'lose-ack' ? '{}' : text);
      } catch (error) {
        record(502);
        response.writeHead(502).end(String(error));
      }
    });
  });
  return {
    origin: await listen(server),
    seen,
    failNext: (...next) => faults.push(...next),
    held: () =>
      new Promise((done) => {
        if (heldRelease) done(heldRelease);
        else heldWaiter = done;
        heldRelease = undefined;
      }),
    close: () => closeServer(server),
  };
}

/** A sent event as the tests read it back from the proxy's record. */
export interface SentEvent {
  type: string;
  messageId: string;
  timestamp: string;
  anonymousId: string;
  userId?: string;
  previousId?: string;
  event?: string;
  name?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  context: {
    page: { path: string; url: string; title: string; referrer: string; search: string };
    campaign: Record<string, string>;
    screen: { width: number; height: number };
    locale: string;
    timezone: string;
  };
}

export interface SentBatch {
  request: SeenRequest;
  batch: SentEvent[];
  sentAt: string;
  writeKey: string;
}

/** The ingest POSTs the proxy saw, parsed. */
export function sentBatches(proxy: Proxy): SentBatch[] {
  return proxy.seen
    .filter((request) => request.method === 'POST' && request.path === '/v1/batch')
    .map((request) => ({ request, ...(JSON.parse(request.body) as Omit<SentBatch, 'request'>) }));
}

/** Every distinct event sent (a retried event once, in the order first sent). */
export function distinctEvents(proxy: Proxy): SentEvent[] {
  const byId = new Map<string, SentEvent>();
  for (const { batch } of sentBatches(proxy)) {
    for (const event of batch) if (!byId.has(event.messageId)) byId.set(event.messageId, event);
  }
  return [...byId.values()];
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string | (() => string),
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(100);
  }
}

export interface TestSite {
  siteId: string;
  writeKey: string;
  shareToken: string;
  goalId: string;
}

export interface GoalStep {
  event: string;
  where?: Array<{ property: string; op?: string; value?: unknown }>;
}

async function admin(baseUrl: string, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** Creates a site with a write key, one goal of `steps` and a share, by the admin API. */
export async function seedSite(
  stack: { baseUrl: string; adminToken: string },
  siteId: string,
  steps: GoalStep[],
): Promise<TestSite> {
  const site = {
    siteId,
    writeKey: `wk_${siteId}_browser_test_key_0001`,
    shareToken: `sh_${siteId}_browser_test_share_001`,
    goalId: 'goal',
  };
  const { baseUrl, adminToken } = stack;
  await admin(baseUrl, adminToken, 'PUT', `/admin/sites/${siteId}`, {
    name: siteId,
    writeKey: site.writeKey,
  });
  await admin(baseUrl, adminToken, 'PUT', `/admin/sites/${siteId}/goals/goal`, {
    name: 'Browser goal',
    window: '1d',
    steps,
  });
  await admin(baseUrl, adminToken, 'POST', `/admin/sites/${siteId}/shares`, {
    token: site.shareToken,
  });
  return site;
}

/** Waits until the site has `events` stored events and every batch is applied. */
export function waitForStored(
  stack: { baseUrl: string; adminToken: string },
  site: TestSite,
  events: number,
) {
  let last: unknown;
  return waitFor(
    () => `${events} stored events of ${site.siteId} (last status ${JSON.stringify(last)})`,
    async () => {
      const path = `/admin/sites/${site.siteId}/status`;
      const status = await admin(stack.baseUrl, stack.adminToken, 'GET', path);
      last = status;
      if (typeof status.events === 'number' && status.events > events) {
        throw new Error(`${status.events} events stored, expected ${events}`);
      }
      return status.events === events && status.pendingBatches === 0 ? status : undefined;
    },
  );
}

export interface Report {
  entered: number;
  completed: number;
  steps: Array<{ index: number; event: string; count: number }>;
}

/** The site's report for yesterday to tomorrow (UTC), bypassing the report cache. */
export async function freshReport(
  stack: { baseUrl: string; adminToken: string },
  site: TestSite,
): Promise<Report> {
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const query = `from=${day(Date.now() - 86_400_000)}&to=${day(Date.now() + 86_400_000)}`;
  const path = `/r/${site.shareToken}/${site.goalId}?${query}&format=json`;
  const response = await fetch(`${stack.baseUrl}${path}`, {
    headers: { authorization: `Bearer ${stack.adminToken}`, 'cache-control': 'no-cache' },
  });
  if (!response.ok) throw new Error(`GET ${path} → ${response.status} ${await response.text()}`);
  return (await response.json()) as Report;
}
