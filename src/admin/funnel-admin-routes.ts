/**
 * Admin-only funnel endpoints: goal versions, rebuilding progress, the event catalogue and
 * people lists. None of these are reachable through a share URL.
 */
import { Hono } from 'hono';
import type { Env } from '../env';
import { getGoalVersion, listGoalStates, listGoalVersions } from '../funnel/goal-store';
import { nowMs } from '../lib/clock';
import { ApiError } from '../lib/http-error';
import { queryCountedAttempts } from '../report/funnel-query';
import { resolveRange, RangeError400 } from '../report/range';
import { requireAdmin } from './admin-auth';
import { limitParam, siteAdmin, siteParam } from './admin-routes';

export const funnelAdminRoutes = new Hono<{ Bindings: Env }>();

funnelAdminRoutes.get('/admin/sites/:siteId/goals/:goalId/versions', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  await requireAdmin(c, siteId);
  const goalId = c.req.param('goalId');
  const versions = await listGoalVersions(c.env.DB, siteId, goalId);
  if (versions.length === 0) throw new ApiError(404, 'goal_not_found', `no goal ${goalId}`);
  const state = (await listGoalStates(c.env.DB, siteId)).find((g) => g.id === goalId);
  return c.json({
    goalId,
    currentVersion: state?.current ?? null,
    readyVersion: state?.ready ?? null,
    versions: versions.map((v) => ({
      version: v.version,
      name: v.name,
      note: v.note,
      createdBy: v.createdBy ?? null,
      createdAt: new Date(v.createdAt).toISOString(),
      definition: v.definition,
    })),
  });
});

funnelAdminRoutes.post('/admin/sites/:siteId/rebuild', async (c) => {
  const { siteId } = await siteAdmin(c);
  const goals = await listGoalStates(c.env.DB, siteId);
  // Every goal's progress is rebuilt from the Durable Object's stored events, as after an
  // engine change; reports keep showing the ready versions until it completes.
  const state = c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(siteId));
  c.executionCtx.waitUntil(state.goalsChanged(siteId).then(() => undefined));
  return c.json({ rebuilding: true, goals: goals.map((g) => g.id) }, 202);
});

funnelAdminRoutes.get('/admin/sites/:siteId/catalogue', async (c) => {
  const { siteId } = await siteAdmin(c);
  const db = c.env.DB;
  const [events, pages, keys] = await db.batch<Record<string, string | number | null>>([
    db
      .prepare(
        `SELECT type, event AS name, COUNT(*) AS count, MIN(ts) AS firstSeen, MAX(ts) AS lastSeen
         FROM events WHERE site_id = ? AND type IN ('track', 'page', 'screen')
         GROUP BY type, event ORDER BY count DESC, name`,
      )
      .bind(siteId),
    db
      .prepare(
        `SELECT type, COALESCE(json_extract(properties, '$.path'),
                               json_extract(context, '$.page.path')) AS path,
                COUNT(*) AS count, MIN(ts) AS firstSeen, MAX(ts) AS lastSeen
         FROM events WHERE site_id = ? AND type IN ('page', 'screen')
         GROUP BY type, path ORDER BY count DESC, path`,
      )
      .bind(siteId),
    db
      .prepare(
        `SELECT e.type, e.event AS name, j.key AS property, j.type AS valueType, COUNT(*) AS count
         FROM events e, json_each(CASE WHEN json_valid(e.properties) THEN e.properties END) j
         WHERE e.site_id = ? AND e.type IN ('track', 'page', 'screen')
         GROUP BY e.type, e.event, j.key, j.type ORDER BY e.event, j.key`,
      )
      .bind(siteId),
  ]);
  const iso = (v: unknown) => (typeof v === 'number' ? new Date(v).toISOString() : null);
  // One entry per key with every type it was seen with (`revenue` as integer and as real).
  const propertiesOf = new Map<string, Array<{ key: string; types: string[]; count: number }>>();
  for (const row of keys?.results ?? []) {
    const id = `${row.type}\u0000${row.name ?? ''}`;
    const list = propertiesOf.get(id) ?? [];
    const key = String(row.property);
    const entry = list.find((p) => p.key === key);
    if (entry) {
      entry.types = [...entry.types, String(row.valueType)].sort();
      entry.count += Number(row.count);
    } else {
      list.push({ key, types: [String(row.valueType)], count: Number(row.count) });
    }
    propertiesOf.set(id, list);
  }
  return c.json({
    events: (events?.results ?? []).map((row) => ({
      type: row.type,
      name: row.name,
      count: row.count,
      firstSeen: iso(row.firstSeen),
      lastSeen: iso(row.lastSeen),
      properties: propertiesOf.get(`${row.type}\u0000${row.name ?? ''}`) ?? [],
    })),
    pages: (pages?.results ?? []).map((row) => ({
      type: row.type,
      path: row.path,
      count: row.count,
      firstSeen: iso(row.firstSeen),
      lastSeen: iso(row.lastSeen),
    })),
  });
});

funnelAdminRoutes.get('/admin/sites/:siteId/goals/:goalId/people', async (c) => {
  const siteId = siteParam(c.req.param('siteId'));
  await requireAdmin(c, siteId);
  const goalId = c.req.param('goalId');
  const state = (await listGoalStates(c.env.DB, siteId)).find((g) => g.id === goalId);
  if (!state) throw new ApiError(404, 'goal_not_found', `no goal ${goalId}`);
  const version = state.ready ?? state.current;
  const goal = await getGoalVersion(c.env.DB, siteId, goalId, version);
  if (!goal) throw new ApiError(404, 'goal_not_found', `no goal ${goalId}`);

  const step = Number(c.req.query('step'));
  if (!Number.isInteger(step) || step < 1 || step > goal.steps.length) {
    throw new ApiError(
      400,
      'invalid_step',
      `step must be a whole number from 1 to ${goal.steps.length}`,
    );
  }
  const limit = limitParam(c.req.query('limit'), 1000, 10_000);
  let range;
  try {
    range = resolveRange(
      { from: c.req.query('from'), to: c.req.query('to'), tz: c.req.query('tz') },
      nowMs(c.env),
    );
  } catch (error) {
    if (error instanceof RangeError400) throw new ApiError(400, error.code, error.message);
    throw error;
  }
  const rows = await queryCountedAttempts(c.env.DB, {
    siteId,
    goalId,
    version,
    steps: goal.steps.length,
    from: range.from,
    to: range.to,
  });
  // Reached step k and, when there is one, not step k+1.
  const people = rows
    .filter(
      (r) => r.times[step - 1] != null && (step === goal.steps.length || r.times[step] == null),
    )
    .map((r) => ({ personId: r.personId, entry: new Date(r.times[0] as number).toISOString() }))
    .sort((a, b) => (a.personId ?? '').localeCompare(b.personId ?? ''));
  return c.json({
    goalId,
    version,
    step,
    total: people.length,
    people: people.slice(0, limit),
  });
});
