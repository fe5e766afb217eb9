/**
 * goalstep's Worker: ingest, admin, report and tracker routes (fetch), the step-health cron
 * (scheduled) and the SiteState Durable Object.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { adminRoutes } from './admin/admin-routes';
import { alertRoutes } from './admin/alert-routes';
import { funnelAdminRoutes } from './admin/funnel-admin-routes';
import { meterRoutes } from './admin/meter-routes';
import { runAlerts } from './alerts/cron';
import { allowsPrivateHosts } from './alerts/destination';
import { ingestAdminRoutes } from './admin/ingest-admin-routes';
import { peopleRoutes } from './admin/people-routes';
import { recordStepVolumes } from './alerts/step-volumes';
import type { Env } from './env';
import { resumeRebuilds } from './funnel/rebuild';
import { ingestRoutes } from './ingest/ingest-routes';
import { reconcilePending } from './ingest/reconcile';
import { purgeExpired } from './ingest/retention';
import { nowMs } from './lib/clock';
import { ApiError, RateLimitedError } from './lib/http-error';
import { logger } from './lib/logger';
import { countInvocation, meterEnv } from './lib/meter';
import { buildOpenApi } from './openapi';
import { reportRoutes } from './report/report-routes';
import { trackerRoutes } from './tracker/tracker-routes';

export { SiteState } from './identity/site-state-do';
export { RateLimiter } from './ingest/rate-limit-do';

/** Paths as logged: share tokens are secrets, so the report path keeps only its shape. */
export function redactPath(path: string): string {
  return path.replace(/^\/r\/[^/]+/, '/r/[token]');
}

const app = new Hono<{ Bindings: Env }>();

// Beacons are sent with credentials, so the preflight must echo the exact origin (C07).
app.use(
  '/v1/*',
  cors({
    origin: (origin) => origin || '*',
    credentials: true,
    allowMethods: ['POST', 'OPTIONS'],
    allowHeaders: ['Content-Type', 'Authorization', 'Content-Encoding'],
    maxAge: 86_400,
  }),
);

app.get('/healthz', (c) => c.json({ ok: true }));
let openApi: Record<string, unknown> | null = null;
app.get('/openapi.json', (c) => c.json((openApi ??= buildOpenApi())));

app.route('/', ingestRoutes);
app.route('/', adminRoutes);
app.route('/', alertRoutes);
app.route('/', funnelAdminRoutes);
app.route('/', ingestAdminRoutes);
app.route('/', peopleRoutes);
app.route('/', meterRoutes);
app.route('/', reportRoutes);
app.route('/', trackerRoutes);

app.notFound((c) => c.json({ code: 'not_found', message: 'no such route' }, 404));

app.onError((error, c) => {
  if (error instanceof RateLimitedError) {
    c.header('Retry-After', String(error.retryAfterSeconds));
  } else if (error instanceof ApiError && error.status === 503) {
    c.header('Retry-After', '5');
  }
  if (error instanceof ApiError) {
    return c.json({ code: error.code, message: error.message }, error.status);
  }
  if (error instanceof HTTPException) {
    return c.json({ code: 'http_error', message: error.message }, error.status);
  }
  logger.error('request.failed', {
    path: redactPath(c.req.path),
    method: c.req.method,
    cause: error,
  });
  return c.json({ code: 'internal_error', message: 'something went wrong; retry later' }, 500);
});

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext) {
    countInvocation(env, 'request');
    return app.fetch(request, meterEnv(env), ctx);
  },
  async scheduled(controller, rawEnv, ctx) {
    const env = meterEnv(rawEnv);
    const now = env.GOALSTEP_NOW ? nowMs(env) : controller.scheduledTime;
    const work = (async () => {
      const applied = await reconcilePending(env, now);
      const volumes = await recordStepVolumes(env.DB, now);
      const rebuilt = await resumeRebuilds(env);
      const purged = await purgeExpired(env.DB, now);
      // Alerts judge the interval ending at the scheduled time (backtests replay it the same way).
      const alerts = await runAlerts(env.DB, now, () => nowMs(env), allowsPrivateHosts(env));
      logger.info('cron.done', {
        cron: controller.cron,
        applied,
        volumes,
        rebuilt: rebuilt.length,
        purged,
        ...alerts,
      });
    })();
    ctx.waitUntil(work);
    // Awaited as well, so the run ends when its work does (tests and --test-scheduled see it).
    await work;
  },
} satisfies ExportedHandler<Env>;
