/**
 * `GET /r/:token/:goalId`: the read-only report. The share token is checked before any cache
 * lookup, so a revoked token stops working on the next request.
 */
import { Hono, type Context } from 'hono';
import { isAdmin } from '../admin/admin-auth';
import { listStepHealth, type StepHealthIncident } from '../alerts/alert-store';
import type { Env } from '../env';
import { MODES, parseWindow, type Goal, type Mode } from '../funnel/definition';
import { sha256Hex } from '../lib/crypto';
import { keepNewest } from '../lib/memo';
import { nowMs } from '../lib/clock';
import { ApiError } from '../lib/http-error';
import { buildReport, filterParam, type ReportView, type SegmentFilter } from './build-report';
import type { CountedAttempt } from './metrics';
import {
  extraColumns,
  isSegmentColumn,
  queryCountedAttempts,
  SEGMENT_COLUMNS,
  toCounted,
} from './funnel-query';
import { localBound, resolveRange, RangeError400, type ReportRange } from './range';
import { queryRollupReport, rollupMinPeople, rollupServes } from './rollup-report';
import { reportCsv } from './report-csv';
import { ErrorPage, ReportPage, type VersionChoice } from './report-page';
import { findReportTarget } from './share-store';

/** How long a computed answer is served from the edge cache as fresh. */
export const REPORT_FRESH_SECONDS = 60;
/**
 * How long a stale answer may still be served while a fresh one is computed in the background
 * (stale-while-revalidate); past this, the request waits for a fresh answer.
 */
export const REPORT_STALE_SECONDS = 600;
const COMPUTED_AT = 'X-Goalstep-Computed-At';

/** A computed answer as the report route serves it. */
interface Answer {
  body: string;
  etag: string;
  computedAt: number;
}

/**
 * The latest answers, kept in the isolate's memory in front of the Cache API (which costs a
 * lookup and a body read per hit, docs/BENCHMARKS.md): the same freshness rules apply to both,
 * and the share is checked in D1 before either answers. Bounded in entries and body size.
 */
const MEMORY_ENTRIES = 32;
const MEMORY_MAX_BODY = 128 * 1024;
const inMemory = new Map<string, Answer>();

function remember(key: string, answer: Answer): void {
  if (answer.body.length <= MEMORY_MAX_BODY) keepNewest(inMemory, key, answer, MEMORY_ENTRIES);
}

/** The answer kept for key, from memory or else the edge cache; undefined when neither has it. */
async function recall(key: Request, now: number): Promise<Answer | undefined> {
  const kept = inMemory.get(key.url);
  if (kept && now - kept.computedAt <= REPORT_STALE_SECONDS * 1000) return kept;
  const hit = await caches.default.match(key);
  const computedAt = Number(hit?.headers.get(COMPUTED_AT) ?? 0);
  // Past the stale period an answer is computed again (the edge cache would have dropped it).
  if (!hit || now - computedAt > REPORT_STALE_SECONDS * 1000) return undefined;
  const answer = { body: await hit.text(), etag: hit.headers.get('ETag') ?? '', computedAt };
  remember(key.url, answer);
  return answer;
}

const FORMATS = ['html', 'json', 'csv'] as const;
type Format = (typeof FORMATS)[number];

const CONTENT_TYPES: Record<Format, string> = {
  html: 'text/html; charset=utf-8',
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
};

export const reportRoutes = new Hono<{ Bindings: Env }>();

reportRoutes.get('/r/:token/:goalId', async (c) => {
  try {
    return await handleReport(c);
  } catch (error) {
    // A person opening a bad link in a browser gets a page, not raw JSON.
    const format = c.req.query('format') || 'html';
    if (error instanceof ApiError && format === 'html') {
      const page = <ErrorPage status={error.status} message={error.message} />;
      if (error.status === 503) c.header('Retry-After', '5');
      return c.html(`<!doctype html>${page.toString()}`, error.status);
    }
    throw error;
  }
});

async function handleReport(c: Context<{ Bindings: Env }>): Promise<Response> {
  const now = nowMs(c.env);
  const notFound = new ApiError(404, 'not_found', 'no such report');
  const goalId = c.req.param('goalId') ?? '';
  // An empty parameter (a form's untouched control) means the default, as if absent.
  const asked = c.req.query('version') || undefined;
  const askedOk = asked === undefined || /^[1-9]\d{0,5}$/.test(asked);
  // The share, the goal's state and its version in one D1 read, before any cache lookup.
  const target = await findReportTarget(c.env.DB, {
    token: c.req.param('token') ?? '',
    goalId,
    version: asked && askedOk ? Number(asked) : null,
    now,
  });
  const share = target?.share;
  if (!share || (share.goalIds && !share.goalIds.includes(goalId))) throw notFound;

  const format = (c.req.query('format') || 'html') as Format;
  if (!FORMATS.includes(format)) {
    throw new ApiError(400, 'invalid_format', 'format must be html, json or csv');
  }
  const state = target.state;
  if (!state) throw notFound;
  if (!askedOk) {
    throw new ApiError(400, 'invalid_version', 'version must be a positive whole number');
  }
  // Until a new version's progress is complete, the newest complete one is shown (and said so).
  const newestReady = state.ready ?? state.current;
  const shown = asked ? Number(asked) : newestReady;
  const goal = target.goal;
  if (!goal) throw new ApiError(404, 'version_not_found', `goal ${goalId} has no version ${shown}`);
  const defined = { mode: goal.mode ?? 'ordered', window: formatWindow(goal.windowMs) };
  const view = parseView(c.req.query(), c.req.queries('filter') ?? [], defined);
  let range;
  try {
    const query = { from: c.req.query('from'), to: c.req.query('to'), tz: c.req.query('tz') };
    range = resolveRange(query, now);
  } catch (error) {
    if (error instanceof RangeError400) throw new ApiError(400, error.code, error.message);
    throw error;
  }
  // Only the newest complete version has complete progress rows; a version still rebuilding
  // (asked for by number) or an older one is computed from stored events.
  const live = goal.version === newestReady;
  const overridden = view.mode !== defined.mode || view.window !== defined.window;
  const source = live && !overridden ? 'progress' : 'events';
  const rebuilding = state.ready !== state.current && goal.version === newestReady;

  // The cache key is the view once normalised (range as instants, the zone's own spelling, the
  // version shown, filters sorted), so two spellings of one view share one answer; never the
  // token. `current` and `ready` are in it because they change what the answer says.
  const normal = {
    site: share.siteId,
    goal: goal.id,
    version: goal.version,
    current: state.current,
    ready: state.ready,
    range,
    view,
    format,
    // The page's links repeat `version` only when it was asked for: a page rendered for
    // `version=4` must not answer the same view asked without it.
    linksPin: format === 'html' && asked !== undefined,
  };
  const keyHash = await sha256Hex(JSON.stringify(normal));
  const cacheKey = new Request(
    `https://report-cache.goalstep.invalid/${encodeURIComponent(share.siteId)}/` +
      `${encodeURIComponent(goal.id)}/${keyHash}`,
  );
  // An admin of the share's site may ask for a fresh answer (measuring merge latency, tests);
  // nobody else can.
  const bypass =
    /no-cache/.test(c.req.header('Cache-Control') ?? '') && (await isAdmin(c, share.siteId));
  const compute = async (): Promise<Answer> => {
    const engineGoal = { ...goal, mode: view.mode, windowMs: parseWindow(view.window) };
    const steps = goal.steps.length;
    const wanted = {
      breakdown: view.breakdown,
      values: goal.value !== undefined,
      filters: view.filters.map((f) => f.key),
    };
    const aggregated =
      source === 'progress' && rollupServes(engineGoal, view, range)
        ? await queryRollupReport(c.env.DB, {
            siteId: share.siteId,
            goal: engineGoal,
            range,
            view,
            now,
            minPeople: rollupMinPeople(c.env),
          })
        : null;
    const rows = aggregated
      ? []
      : source === 'progress'
        ? await queryCountedAttempts(c.env.DB, {
            siteId: share.siteId,
            goalId: goal.id,
            version: goal.version,
            steps,
            from: range.from,
            to: range.to,
            ...wanted,
          })
        : await viewRows(c.env, share.siteId, engineGoal, range, steps, wanted, bypass);
    const report = buildReport({
      goal: engineGoal,
      defined,
      view,
      rows,
      aggregated,
      source: aggregated ? 'rollup' : source,
      latestVersion: state.current,
      rebuilding,
      range,
      now,
    });
    // Step health of the range (and what is open now) for the page and the JSON; CSV holds the
    // funnel's numbers only.
    const health =
      format === 'csv'
        ? []
        : await listStepHealth(c.env.DB, {
            siteId: share.siteId,
            goalId: goal.id,
            from: range.from,
            to: range.to,
            limit: 20,
          });
    const search = (f: Format) =>
      viewSearch({ view, range, defined, format: f, version: asked ? goal.version : null });
    const body = renderReport(format, report, health, search, defined, {
      shown: goal.version,
      pinned: asked !== undefined && goal.version !== newestReady,
      newestReady,
      latest: state.current,
    });
    // The tag covers the view, the numbers and the page's alerts, not the moment they were
    // computed: a recompute with unchanged data keeps its tag, so revalidation stays a 304.
    const basis = JSON.stringify([keyHash, { ...report, generatedAt: null }, health]);
    const answer = {
      body,
      etag: `W/"${(await sha256Hex(basis)).slice(0, 32)}"`,
      computedAt: now,
    };
    const response = new Response(body, {
      headers: {
        'Content-Type': CONTENT_TYPES[format],
        ETag: answer.etag,
        'Cache-Control': `max-age=${REPORT_STALE_SECONDS}`,
        [COMPUTED_AT]: String(now),
      },
    });
    remember(cacheKey.url, answer);
    c.executionCtx.waitUntil(caches.default.put(cacheKey, response));
    return answer;
  };

  let cached = bypass ? undefined : await recall(cacheKey, now);
  let cacheState: 'hit' | 'stale' | 'miss' | 'bypass' = 'hit';
  if (!cached) {
    cacheState = bypass ? 'bypass' : 'miss';
    cached = await compute();
  } else if (now - cached.computedAt > REPORT_FRESH_SECONDS * 1000) {
    // Stale while revalidate: this answer goes out now, the next request gets a fresh one.
    cacheState = 'stale';
    c.executionCtx.waitUntil(compute().then(() => undefined));
  }

  const etag = cached.etag;
  const headers = {
    ETag: etag,
    'Cache-Control': 'private, no-cache',
    'X-Goalstep-Cache': cacheState,
    'Referrer-Policy': 'no-referrer',
    'X-Robots-Tag': 'noindex',
  };
  if (matchesEtag(c.req.header('If-None-Match'), etag)) return c.body(null, 304, headers);
  return c.body(cached.body, 200, {
    ...headers,
    'Content-Type': CONTENT_TYPES[format],
  });
}

/**
 * The counted attempts of an override view (or an old version), from the site object's stored
 * events; 503 `busy` when too many other views already wait for the object's one walk.
 */
async function viewRows(
  env: Env,
  siteId: string,
  goal: Goal,
  range: ReportRange,
  steps: number,
  wanted: Parameters<typeof extraColumns>[0],
  fresh: boolean,
): Promise<CountedAttempt[]> {
  const columns = [
    'reached',
    ...Array.from({ length: steps }, (_, i) => `t${i + 1}`),
    ...extraColumns(wanted),
  ];
  const answer = await env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId)).viewAttempts(
    siteId,
    goal,
    range.from,
    range.to,
    columns,
    { fresh },
  );
  if (!answer.ok) {
    throw new ApiError(
      503,
      'busy',
      'this site is computing other custom views (mode or window overrides); retry shortly',
    );
  }
  return answer.rows.map((row) => toCounted(row, steps));
}

/**
 * `If-None-Match` by the weak comparison of RFC 9110: `*`, or any listed tag whose opaque part
 * equals ours, with or without `W/` (proxies weaken strong tags when they compress).
 */
export function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header || !etag) return false;
  if (header.trim() === '*') return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  return header.split(',').some((tag) => opaque(tag) === opaque(etag));
}

const BREAKDOWN_PROPERTY = /^(property|trait):[A-Za-z0-9_.$-]{1,100}$/;
const FILTER = /^((?:property|trait):[A-Za-z0-9_.$-]{1,100}|[a-z_]{1,40}):(.{1,200})$/s;
const MAX_FILTERS = 10;

/** A segment key a breakdown or a filter may name. */
const isSegmentKey = (key: string) => isSegmentColumn(key) || BREAKDOWN_PROPERTY.test(key);

/** A window in its shortest whole unit: `168h` and `7d` are one view, written `7d`. */
export function formatWindow(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  return `${ms / 60_000}m`;
}

/**
 * Reads and normalises the view parameters: mode and window overrides, breakdown, top N,
 * interval and segment filters. An empty parameter means its default.
 */
function parseView(
  query: Record<string, string>,
  filters: readonly string[],
  defined: { mode: Mode; window: string },
): ReportView {
  const wantedMode = query.mode || defined.mode;
  if (!(MODES as readonly string[]).includes(wantedMode)) {
    throw new ApiError(400, 'invalid_mode', 'mode must be ordered, strict or any');
  }
  let windowMs: number;
  try {
    windowMs = parseWindow((query.window || defined.window).trim());
  } catch {
    throw new ApiError(400, 'invalid_window', 'window must look like "30m", "12h" or "7d"');
  }
  // Nobody completes in a zero window, and a window past a year is a typo, not an analysis.
  if (windowMs <= 0 || windowMs > 366 * 86_400_000) {
    throw new ApiError(400, 'invalid_window', 'window must be longer than 0 and at most 366d');
  }
  const by = query.breakdown || null;
  if (by !== null && !isSegmentKey(by)) {
    throw new ApiError(
      400,
      'invalid_breakdown',
      `breakdown must be one of ${Object.keys(SEGMENT_COLUMNS).join(', ')}, ` +
        'property:<name> or trait:<name>',
    );
  }
  // Plain digits only: Number() would also read `1e1` or `0x10`.
  if (query.top && !/^\d{1,3}$/.test(query.top)) {
    throw new ApiError(400, 'invalid_top', 'top must be a whole number from 1 to 50');
  }
  const top = query.top ? Number(query.top) : 5;
  if (top < 1 || top > 50) {
    throw new ApiError(400, 'invalid_top', 'top must be a whole number from 1 to 50');
  }
  const interval = query.interval || 'day';
  if (interval !== 'day' && interval !== 'week') {
    throw new ApiError(400, 'invalid_interval', 'interval must be day or week');
  }
  return {
    mode: wantedMode as Mode,
    window: formatWindow(windowMs),
    breakdown: by,
    top,
    interval,
    filters: parseFilters(filters),
  };
}

/**
 * `filter=<key>:<value>`, or `filter=<key>` for people without a value, repeatable; empty ones
 * (an unused form field) are skipped.
 */
function parseFilters(raw: readonly string[]): SegmentFilter[] {
  const given = raw.map((text) => text.trim()).filter((text) => text !== '');
  if (given.length > MAX_FILTERS) {
    throw new ApiError(400, 'invalid_filter', `at most ${MAX_FILTERS} filters`);
  }
  const filters = new Map<string, SegmentFilter>();
  for (const text of given) {
    const match = FILTER.exec(text);
    const filter: SegmentFilter | null = isSegmentKey(text)
      ? { key: text, value: null }
      : match && isSegmentKey(match[1]!)
        ? { key: match[1]!, value: match[2]! }
        : null;
    if (!filter) {
      throw new ApiError(
        400,
        'invalid_filter',
        'filter must be <key>:<value>, or <key> alone for no value, with a key of ' +
          `${Object.keys(SEGMENT_COLUMNS).join(', ')}, property:<name> or trait:<name>`,
      );
    }
    filters.set(JSON.stringify([filter.key, filter.value]), filter);
  }
  // Sorted by key, then value, no value first: one spelling per set of filters.
  const before = (a: string | null, b: string | null) => a === null || (b !== null && a < b);
  return [...filters.values()].sort((a, b) =>
    a.key === b.key ? (before(a.value, b.value) ? -1 : 1) : a.key < b.key ? -1 : 1,
  );
}

/**
 * The query string of a normalised view: what the page's links and form carry, so a cached page
 * is the same whichever spelling of the view first filled the cache. Defaults are left out.
 */
function viewSearch(input: {
  view: ReportView;
  range: ReportRange;
  defined: { mode: Mode; window: string };
  format: Format;
  version: number | null;
}): string {
  const { view, range, defined } = input;
  const params = new URLSearchParams({
    from: localBound(range.from, range.tz),
    to: localBound(range.to, range.tz),
    tz: range.tz,
  });
  if (view.mode !== defined.mode) params.set('mode', view.mode);
  if (view.window !== defined.window) params.set('window', view.window);
  if (view.breakdown) params.set('breakdown', view.breakdown);
  if (view.top !== 5) params.set('top', String(view.top));
  if (view.interval !== 'day') params.set('interval', view.interval);
  for (const f of view.filters) params.append('filter', filterParam(f));
  if (input.version !== null) params.set('version', String(input.version));
  if (input.format !== 'html') params.set('format', input.format);
  return `?${params}`;
}

function renderReport(
  format: Format,
  report: ReturnType<typeof buildReport>,
  health: StepHealthIncident[],
  search: (format: Format) => string,
  defined: { mode: Mode; window: string },
  versions: VersionChoice,
): string {
  if (format === 'json') return JSON.stringify({ ...report, stepHealth: health });
  if (format === 'csv') return reportCsv(report);
  // Query-only links: the cached page must not carry the token it was first rendered for.
  const page = (
    <ReportPage
      report={report}
      health={health}
      versions={versions}
      defined={defined}
      links={{ json: search('json'), csv: search('csv') }}
    />
  );
  return `<!doctype html>${page.toString()}`;
}
