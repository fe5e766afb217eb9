/**
 * `GET /admin/meter?site=` and `POST /admin/meter/reset?site=`: the usage meter of
 * src/lib/meter.ts for the cost benchmark. Root admin only, and 404 unless the var `METER` is
 * "1", so a deployment never exposes it.
 */
import { Hono, type Context } from 'hono';
import type { Env } from '../env';
import { ApiError } from '../lib/http-error';
import { metering, readTally, resetTally, type Tally } from '../lib/meter';
import { requireAdmin } from './admin-auth';
import { siteParam } from './admin-routes';

export const meterRoutes = new Hono<{ Bindings: Env }>();

/** The worker's tally and the site object's, once if they share an isolate. */
async function tallies(c: Context<{ Bindings: Env }>, reset: boolean): Promise<Tally[]> {
  if (!metering(c.env)) throw new ApiError(404, 'not_found', 'no such route');
  const admin = await requireAdmin(c);
  if (admin.siteId !== null) throw new ApiError(403, 'forbidden', 'the root admin token is needed');
  const siteId = siteParam(c.req.query('site') ?? '');
  const worker = readTally();
  if (reset) resetTally();
  const state = c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(siteId));
  const object = await state.meterTally(reset);
  return object.isolate === worker.isolate ? [worker] : [worker, object];
}

meterRoutes.get('/admin/meter', async (c) => c.json({ tallies: await tallies(c, false) }));
meterRoutes.post('/admin/meter/reset', async (c) => c.json({ tallies: await tallies(c, true) }));
