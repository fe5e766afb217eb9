/** Helpers for tests that drive the real Worker (SELF) with real local D1 and Durable Objects. */
import { env, SELF } from 'cloudflare:test';
import type { Goal } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { goalKey, type PersonProgress } from '../../src/funnel/progress-store';
import { foldLogStatements, rebuildRollups } from '../../src/funnel/rollups';
import { segmentOf } from '../../src/funnel/segment';
import { packEntry, packStatement } from '../../src/ingest/event-packs';

export const ADMIN = { Authorization: `Bearer ${env.ADMIN_TOKEN}` };
const BASE = 'https://goalstep.test';

export interface TestSite {
  siteId: string;
  writeKey: string;
  shareToken: string;
  goalId: string;
}

/** Creates a site with a write key, a goal and a share through the admin API. */
export async function seedSite(siteId: string, steps: string[], window = '7d'): Promise<TestSite> {
  const site = {
    siteId,
    writeKey: `wk_${siteId}_test_key_000000001`,
    shareToken: `sh_${siteId}_test_share_00000001`,
    goalId: 'goal',
  };
  const put = (path: string, body: unknown, method = 'PUT') =>
    SELF.fetch(`${BASE}${path}`, {
      method,
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  expect((await put(`/admin/sites/${siteId}`, { name: siteId, writeKey: site.writeKey })).ok).toBe(
    true,
  );
  const goal = await put(`/admin/sites/${siteId}/goals/goal`, {
    name: 'Test goal',
    window,
    steps: steps.map((event) => ({ event })),
  });
  expect(goal.ok).toBe(true);
  const share = await put(`/admin/sites/${siteId}/shares`, { token: site.shareToken }, 'POST');
  expect(share.ok).toBe(true);
  return site;
}

/** Posts a body to an ingest route with the site's write key (Basic auth). */
export function ingest(
  site: TestSite,
  body: unknown,
  route = '/v1/batch',
  headers: Record<string, string> = {},
): Promise<Response> {
  return SELF.fetch(`${BASE}${route}`, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
      'Content-Type': 'application/json',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** An ingest request with the site's write key, for the fault wrapper (`fetchWithFaults`). */
export function beacon(site: TestSite, body: unknown): Request {
  return new Request(`${BASE}/v1/batch`, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
      'Content-Type': 'application/json',
    },
    body: JSON.stringify(body),
  });
}

/** Posts to the historical import path with the admin token. */
export function importBatch(site: TestSite, batch: unknown[]): Promise<Response> {
  return SELF.fetch(`${BASE}/v1/import?site=${site.siteId}`, {
    method: 'POST',
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ batch }),
  });
}

/** Waits until every accepted batch of the site is reflected in its progress rows. */
export async function settle(site: Pick<TestSite, 'siteId'>): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    const res = await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/pending`, { headers: ADMIN });
    if (!res.ok) throw new Error(`/pending answered ${res.status}: ${await res.text()}`);
    const status = (await res.json()) as { pendingBatches: number };
    if (status.pendingBatches === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('batches still pending after 4 s');
}

export interface ReportJson {
  version: number;
  entered: number;
  completed: number;
  steps: Array<{
    count: number;
    conversionFromPrevious: number | null;
    medianSecondsFromPrevious: number | null;
  }>;
}

/** Request options that bypass the report cache (an admin-only option). */
export const FRESH: RequestInit = { headers: { ...ADMIN, 'Cache-Control': 'no-cache' } };

/** Fetches a site's report URL with `query`, bypassing the cache unless `init` says otherwise. */
export function reportGet(site: TestSite, query: string, init: RequestInit = FRESH) {
  return SELF.fetch(`${BASE}/r/${site.shareToken}/${site.goalId}?${query}`, init);
}

/** Fetches the JSON report for a range, bypassing the server cache (an admin-only option). */
export async function report(site: TestSite, from: string, to: string): Promise<ReportJson> {
  const res = await reportGet(site, `from=${from}&to=${to}&format=json`);
  expect(res.status).toBe(200);
  return (await res.json()) as ReportJson;
}

export const counts = (r: ReportJson) => r.steps.map((s) => s.count);

/** A track event at an ISO time. */
export function track(
  event: string,
  ids: { anonymousId?: string; userId?: string },
  messageId: string,
  timestamp: string,
) {
  return { type: 'track', event, ...ids, messageId, timestamp };
}

/** An identify joining a device to a user at an ISO time. */
export function identify(
  anonymousId: string,
  userId: string,
  messageId: string,
  timestamp: string,
) {
  return { type: 'identify', anonymousId, userId, messageId, timestamp };
}

/** A site's rollup tables, ordered by key (what a fold or a rebuild must leave equal). */
export async function rollupTables(siteId: string): Promise<unknown[]> {
  const [rollups, durations] = await env.DB.batch([
    env.DB.prepare(
      'SELECT * FROM rollups WHERE site_id = ? ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9',
    ).bind(siteId),
    env.DB.prepare(
      'SELECT * FROM rollup_durations WHERE site_id = ? ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10',
    ).bind(siteId),
  ]);
  return [rollups?.results, durations?.results];
}

/**
 * Folds the site's rollup log and checks the rollups then equal a rebuild of `versions` from the
 * rows (docs/METRICS.md, "Kept equal to the rows"). `label` names the check in a failure.
 */
export async function expectFoldEqualsRebuild(
  siteId: string,
  versions: ReadonlyArray<{ id: string; version: number }>,
  label?: string,
): Promise<void> {
  await env.DB.batch(foldLogStatements(env.DB, siteId));
  const folded = await rollupTables(siteId);
  await rebuildRollups(env.DB, siteId, versions, 0);
  expect(await rollupTables(siteId), label).toEqual(folded);
}

/** Waits until a goal version's progress is rebuilt, so reports show that version. */
export async function waitReady(siteId: string, goalId: string, version: number): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    const res = await SELF.fetch(`${BASE}/admin/sites/${siteId}/goals/${goalId}/versions`, {
      headers: ADMIN,
    });
    const body = (await res.json()) as { readyVersion: number | null };
    if (body.readyVersion === version) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`version ${version} never became ready`);
}

/** The real statement behind an observed one (what `batch` must be given). */
const REAL = Symbol('real statement');

/**
 * A view of the binding that reports each statement bound (its SQL and values) and the `meta`
 * of every batch result and of every statement's `run` and `all` (`first` and `raw` return no
 * meta): the one wrapper the measuring helpers build on.
 */
export function observing(
  db: D1Database,
  seen: { bound?: (sql: string, values: unknown[]) => void; meta?: (meta: D1Meta) => void },
): D1Database {
  const statement = (real: D1PreparedStatement, sql: string): D1PreparedStatement =>
    new Proxy(real, {
      get(target, prop) {
        if (prop === REAL) return target;
        if (prop === 'bind') {
          return (...values: unknown[]) => {
            seen.bound?.(sql, values);
            return statement(target.bind(...values), sql);
          };
        }
        if (prop === 'run' || prop === 'all') {
          return async () => {
            const result = await target[prop]();
            seen.meta?.(result.meta);
            return result;
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'prepare') return (sql: string) => statement(target.prepare(sql), sql);
      if (prop !== 'batch') {
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (statements: D1PreparedStatement[]) => {
        const real = statements.map(
          (s) => (s as D1PreparedStatement & { [REAL]?: D1PreparedStatement })[REAL] ?? s,
        );
        const results = await target.batch(real);
        for (const r of results) seen.meta?.(r.meta);
        return results;
      };
    },
  });
}

/** Sums `meta.rows_written` and `rows_read` of what runs through the binding (`observing`). */
export function counting(db: D1Database): {
  db: D1Database;
  written: () => number;
  read: () => number;
} {
  let written = 0;
  let read = 0;
  const wrapped = observing(db, {
    meta: (meta) => {
      written += meta.rows_written ?? 0;
      read += meta.rows_read ?? 0;
    },
  });
  return { db: wrapped, written: () => written, read: () => read };
}

/** A person whose events are views at the given times, with their attempts on `goal`. */
export function viewer(goal: Goal, personId: string, times: readonly number[]): PersonProgress {
  const events = times.map((ts, i) => ({
    messageId: `${personId}-${i}`,
    ts,
    type: 'track',
    event: 'view',
    properties: null,
  }));
  const attempts = computeAttempts(events, goal).map((a) => ({ ...a, segment: segmentOf(null) }));
  return { personId, attempts: new Map([[goalKey(goal), attempts]]) };
}

/** An event as a test writes it to D1's packs directly (the fields it leaves out are null). */
export interface PackedEvent {
  messageId: string;
  event: string;
  ts: number;
  type?: 'track' | 'page' | 'identify' | 'alias';
  anonymousId?: string | null;
  userId?: string | null;
  properties?: Record<string, unknown> | null;
  context?: Record<string, unknown>;
}

/**
 * The statement that stores events in D1's packs the way the site object's write cycle does
 * (one pack per hour of event time), without the object: for tests of what reads D1 alone.
 */
export function packEvents(
  siteId: string,
  receivedAt: number,
  events: readonly PackedEvent[],
): D1PreparedStatement {
  return packStatement(env.DB, {
    siteId,
    receivedAt,
    entries: JSON.stringify(
      events.map((e) =>
        packEntry({
          messageId: e.messageId,
          type: e.type ?? 'track',
          event: e.event,
          anonymousId: e.anonymousId ?? null,
          userId: e.userId ?? null,
          previousId: null,
          ts: e.ts,
          clientTs: null,
          properties: e.properties ?? null,
          traits: null,
          context: e.context ?? {},
        }),
      ),
    ),
  });
}

/** The site's Durable Object. */
export const stateOf = (siteId: string) => env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId));

/** The message ids D1 holds for a site (first copies, through the `events` view), sorted. */
export async function storedIds(siteId: string): Promise<string[]> {
  const { results } = await env.DB.prepare('SELECT message_id FROM events WHERE site_id = ?')
    .bind(siteId)
    .all<{ message_id: string }>();
  return results.map((r) => r.message_id).sort();
}

/** Every copy D1's packs hold for a site, repeats included. */
export async function packedCopies(siteId: string): Promise<number> {
  const row = await env.DB.prepare(
    `SELECT COUNT(*) AS n FROM event_packs h CROSS JOIN json_each(h.events) j
     WHERE h.site_id = ?`,
  )
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}
