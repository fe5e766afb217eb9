/**
 * goalstep's Worker: ingest, admin and report routes (fetch), the step-health cron (scheduled)
 * and the SiteState Durable Object.
 */
import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { adminRoutes } from './admin/admin-routes';
import { peopleRoutes } from './admin/people-routes';
import { recordStepVolumes } from './alerts/step-volumes';
import type { Env } from './env';
import { ingestRoutes } from './ingest/ingest-routes';
import { reconcilePending } from './ingest/reconcile';
import { nowMs } from './lib/clock';
import { ApiError } from './lib/http-error';
import { logger } from './lib/logger';
import { buildOpenApi } from './openapi';
import { reportRoutes } from './report/report-routes';

export { SiteState } from './identity/site-state-do';

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
app.route('/', peopleRoutes);
app.route('/', reportRoutes);

app.notFound((c) => c.json({ code: 'not_found', message: 'no such route' }, 404));

app.onError((error, c) => {
  if (error instanceof ApiError) {
    return c.json({ code: error.code, message: error.message }, error.status);
  }
  if (error instanceof HTTPException) {
    return c.json({ code: 'http_error', message: error.message }, error.status);
  }
  logger.error('request.failed', { path: redactPath(c.req.path), method: c.req.method, cause: error });
  return c.json({ code: 'internal_error', message: 'something went wrong; retry later' }, 500);
});

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    const now = env.GOALSTEP_NOW ? nowMs(env) : controller.scheduledTime;
    ctx.waitUntil(
      (async () => {
        const applied = await reconcilePending(env, now);
        const volumes = await recordStepVolumes(env.DB, now);
        logger.info('cron.done', { cron: controller.cron, applied, volumes });
      })(),
    );
  },
} satisfies ExportedHandler<Env>;
