/**
 * `GET /r/:token/:goalId`: the read-only report. The share token is checked before any cache
 * lookup, so a revoked token stops working on the next request.
 */
import { Hono, type Context } from 'hono';
import { isAdmin } from '../admin/admin-auth';
import { listAlertHistory, type AlertHistoryEntry } from '../alerts/alert-store';
import type { Env } from '../env';
import { MODES, parseWindow, type Mode } from '../funnel/definition';
import { getGoalVersion } from '../funnel/goal-store';
import { sha256Hex } from '../lib/crypto';
import { nowMs } from '../lib/clock';
import { ApiError } from '../lib/http-error';
import { buildReport, type ReportView } from './build-report';
import { extraColumns, queryCountedAttempts, SEGMENT_COLUMNS, toCounted } from './funnel-query';
import { resolveRange, RangeError400 } from './range';
import { queryRollupReport, rollupMinPeople, rollupServes } from './rollup-report';
import { reportCsv } from './report-csv';
import { ErrorPage, ReportPage } from './report-page';
import { findShare } from './share-store';

/** How long a computed answer is served from the edge cache as fresh. */
export const REPORT_FRESH_SECONDS = 60;
/**
 * How long a stale answer may still be served while a fresh one is computed in the background
 * (stale-while-revalidate); past this, the request waits for a fresh answer.
 */
export const REPORT_STALE_SECONDS = 600;
const COMPUTED_AT = 'X-Goalstep-Computed-At';

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
    const format = c.req.query('format') ?? 'html';
    if (error instanceof ApiError && format === 'html') {
      const page = <ErrorPage status={error.status} message={error.message} />;
      return c.html(`<!doctype html>${page.toString()}`, error.status);
    }
    throw error;
  }
});

async function handleReport(c: Context<{ Bindings: Env }>): Promise<Response> {
  const now = nowMs(c.env);
  const notFound = new ApiError(404, 'not_found', 'no such report');
  const share = await findShare(c.env.DB, c.req.param('token') ?? '', now);
  const goalId = c.req.param('goalId') ?? '';
  if (!share || (share.goalIds && !share.goalIds.includes(goalId))) throw notFound;

  const format = (c.req.query('format') ?? 'html') as Format;
  if (!FORMATS.includes(format)) {
    throw new ApiError(400, 'invalid_format', 'format must be html, json or csv');
  }
  const state = await c.env.DB.prepare(
    `SELECT current_version AS current, ready_version AS ready FROM goals
     WHERE site_id = ? AND id = ?`,
  )
    .bind(share.siteId, goalId)
    .first<{ current: number; ready: number | null }>();
  if (!state) throw notFound;
  const asked = c.req.query('version');
  if (asked !== undefined && !/^[1-9]\d{0,5}$/.test(asked)) {
    throw new ApiError(400, 'invalid_version', 'version must be a positive whole number');
  }
  // Until a new version's progress is complete, the newest complete one is shown (and said so).
  const shown = asked ? Number(asked) : (state.ready ?? state.current);
  const goal = await getGoalVersion(c.env.DB, share.siteId, goalId, shown);
  if (!goal) throw new ApiError(404, 'version_not_found', `goal ${goalId} has no version ${shown}`);
  const view = parseView(c.req.query(), goal.mode ?? 'ordered', goal.window);
  const query = { from: c.req.query('from'), to: c.req.query('to'), tz: c.req.query('tz') };
  let range;
  try {
    range = resolveRange(query, now);
  } catch (error) {
    if (error instanceof RangeError400) throw new ApiError(400, error.code, error.message);
    throw error;
  }
  const live = goal.version === state.current || goal.version === state.ready;
  const overridden =
    view.mode !== (goal.mode ?? 'ordered') || parseWindow(view.window) !== goal.windowMs;
  const source = live && !overridden ? 'progress' : 'events';

  // The cache key holds everything that changes the answer, and never the token.
  const cacheKey = new Request(
    `https://report-cache.goalstep.invalid/${encodeURIComponent(share.siteId)}/` +
      `${encodeURIComponent(goal.id)}/v${goal.version}-${state.current}-${state.ready}/` +
      `${range.from}-${range.to}/${encodeURIComponent(range.tz)}/${format}/` +
      `${view.mode}-${view.window}-${encodeURIComponent(view.breakdown ?? '')}-` +
      `${view.top}-${view.interval}`,
  );
  const cache = caches.default;
  // An admin may ask for a fresh answer (measuring merge latency, tests); nobody else can.
  const bypass = /no-cache/.test(c.req.header('Cache-Control') ?? '') && (await isAdmin(c));
  const compute = async () => {
    const engineGoal = { ...goal, mode: view.mode, windowMs: parseWindow(view.window) };
    const steps = goal.steps.length;
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
            breakdown: view.breakdown,
            values: goal.value !== undefined,
          })
        : (
            await c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(share.siteId)).viewAttempts(
              share.siteId,
              engineGoal,
              range.from,
              range.to,
              [
                'reached',
                ...Array.from({ length: steps }, (_, i) => `t${i + 1}`),
                ...extraColumns({ breakdown: view.breakdown, values: goal.value !== undefined }),
              ],
            )
          ).map((row) => toCounted(row, steps));
    const report = buildReport({
      goal: engineGoal,
      view,
      rows,
      aggregated,
      source: aggregated ? 'rollup' : source,
      latestVersion: state.current,
      rebuilding: !asked && (goal.version !== state.current || state.ready === null),
      range,
      now,
    });
    // Step health is for the page; the numbers of the funnel are the same in every format.
    const health =
      format === 'html' ? await listAlertHistory(c.env.DB, share.siteId, goal.id, 10) : [];
    const body = renderReport(format, report, health, c.req.url, query);
    // The tag covers the numbers and the view, not the moment they were computed: a recompute
    // with unchanged data keeps its tag, so revalidation stays a 304.
    const basis = `${format}:${c.req.url}:${JSON.stringify({ ...report, generatedAt: null })}`;
    const response = new Response(body, {
      headers: {
        'Content-Type': CONTENT_TYPES[format],
        ETag: `W/"${(await sha256Hex(basis)).slice(0, 32)}"`,
        'Cache-Control': `max-age=${REPORT_STALE_SECONDS}`,
        [COMPUTED_AT]: String(now),
      },
    });
    c.executionCtx.waitUntil(cache.put(cacheKey, response.clone()));
    return response;
  };

  let cached = bypass ? undefined : await cache.match(cacheKey);
  let cacheState: 'hit' | 'stale' | 'miss' | 'bypass' = 'hit';
  if (!cached) {
    cacheState = bypass ? 'bypass' : 'miss';
    cached = await compute();
  } else if (now - Number(cached.headers.get(COMPUTED_AT) ?? 0) > REPORT_FRESH_SECONDS * 1000) {
    // Stale while revalidate: this answer goes out now, the next request gets a fresh one.
    cacheState = 'stale';
    c.executionCtx.waitUntil(compute().then(() => undefined));
  }

  const etag = cached.headers.get('ETag') ?? '';
  const headers = {
    ETag: etag,
    'Cache-Control': 'private, no-cache',
    'X-Goalstep-Cache': cacheState,
    'Referrer-Policy': 'no-referrer',
    'X-Robots-Tag': 'noindex',
  };
  if (matchesEtag(c.req.header('If-None-Match'), etag)) return c.body(null, 304, headers);
  return c.body(await cached.text(), 200, {
    ...headers,
    'Content-Type': CONTENT_TYPES[format],
  });
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

/** Reads the view parameters: mode and window overrides, breakdown, top N, interval. */
function parseView(query: Record<string, string>, mode: Mode, window: string): ReportView {
  const wantedMode = query.mode || mode;
  if (!(MODES as readonly string[]).includes(wantedMode)) {
    throw new ApiError(400, 'invalid_mode', 'mode must be ordered, strict or any');
  }
  const wantedWindow = (query.window || window).trim();
  let windowMs: number;
  try {
    windowMs = parseWindow(wantedWindow);
  } catch {
    throw new ApiError(400, 'invalid_window', 'window must look like "30m", "12h" or "7d"');
  }
  // Nobody completes in a zero window, and a window past a year is a typo, not an analysis.
  if (windowMs <= 0 || windowMs > 366 * 86_400_000) {
    throw new ApiError(400, 'invalid_window', 'window must be longer than 0 and at most 366d');
  }
  const by = query.breakdown || null;
  if (by !== null && !(by in SEGMENT_COLUMNS) && !BREAKDOWN_PROPERTY.test(by)) {
    throw new ApiError(
      400,
      'invalid_breakdown',
      `breakdown must be one of ${Object.keys(SEGMENT_COLUMNS).join(', ')}, ` +
        'property:<name> or trait:<name>',
    );
  }
  const top = query.top === undefined ? 5 : Number(query.top);
  if (!Number.isInteger(top) || top < 1 || top > 50) {
    throw new ApiError(400, 'invalid_top', 'top must be a whole number from 1 to 50');
  }
  const interval = query.interval ?? 'day';
  if (interval !== 'day' && interval !== 'week') {
    throw new ApiError(400, 'invalid_interval', 'interval must be day or week');
  }
  return { mode: wantedMode as Mode, window: wantedWindow, breakdown: by, top, interval };
}

function renderReport(
  format: Format,
  report: ReturnType<typeof buildReport>,
  health: AlertHistoryEntry[],
  url: string,
  query: { from?: string; to?: string; tz?: string },
): string {
  if (format === 'json') return JSON.stringify(report);
  if (format === 'csv') return reportCsv(report);
  const link = (f: Format) => {
    const target = new URL(url);
    target.searchParams.set('format', f);
    // Query-only links: the cached page must not carry the token it was first rendered for.
    return target.search;
  };
  const page = (
    <ReportPage
      report={report}
      health={health}
      query={{
        from: query.from ?? report.range.from.slice(0, 10),
        to: query.to ?? report.range.to.slice(0, 10),
        tz: query.tz ?? report.range.tz,
      }}
      links={{ json: link('json'), csv: link('csv') }}
    />
  );
  return `<!doctype html>${page.toString()}`;
}
