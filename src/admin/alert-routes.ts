/** Step-health alert admin: config, channels, open alerts, history, deliveries, backtest. */
import { Hono } from 'hono';
import { z } from 'zod';
import {
  alertConfigInputSchema,
  configProblems,
  goalConfigInputSchema,
  resolveConfig,
  type AlertConfig,
  type AlertConfigInput,
} from '../alerts/config';
import { allowsPrivateHosts, privateDestinationReason } from '../alerts/destination';
import { backtestSite } from '../alerts/run-checks';
import type { Env } from '../env';
import { nowMs } from '../lib/clock';
import { randomToken } from '../lib/crypto';
import { ApiError } from '../lib/http-error';
import { listAlertHistory, loadAlertConfigs } from '../alerts/alert-store';
import { getCurrentGoal } from '../funnel/goal-store';
import { limitParam, parseJson, SITE_ID, siteAdmin } from './admin-routes';

const httpUrl = z.url({ protocol: /^https?$/ }).max(2000);

export const channelInputSchema = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('webhook'),
      name: z.string().min(1).max(200),
      url: httpUrl,
      /** The HMAC secret; generated (and returned once) when omitted. */
      secret: z.string().min(16).max(200).optional(),
      minSeverity: z.enum(['info', 'warning', 'critical']).default('info'),
    }),
    z.object({
      kind: z.literal('slack'),
      name: z.string().min(1).max(200),
      url: httpUrl,
      minSeverity: z.enum(['info', 'warning', 'critical']).default('warning'),
    }),
    z.object({
      kind: z.literal('pagerduty'),
      name: z.string().min(1).max(200),
      /** The Events v2 endpoint, always given (https://events.pagerduty.com/v2/enqueue). */
      url: httpUrl,
      routingKey: z.string().min(1).max(200),
      minSeverity: z.enum(['info', 'warning', 'critical']).default('critical'),
    }),
  ])
  .meta({ id: 'AlertChannelInput' });

export const backtestInputSchema = z
  .object({ from: z.iso.datetime({ offset: true }), to: z.iso.datetime({ offset: true }) })
  .meta({ id: 'AlertBacktestInput' });

const MAX_BACKTEST_MS = 31 * 86_400_000;

export const alertRoutes = new Hono<{ Bindings: Env }>();

async function requireGoal(db: D1Database, siteId: string, goalId: string): Promise<void> {
  if (!SITE_ID.test(goalId)) throw new ApiError(400, 'invalid_goal_id', 'goal ids are [a-z0-9_-]');
  if (!(await getCurrentGoal(db, siteId, goalId))) {
    throw new ApiError(404, 'goal_not_found', `no goal ${goalId}`);
  }
}

/** Refuses an effective config with a cross-key problem, naming the key (and the goal). */
function refuseProblems(config: AlertConfig, goalId?: string): void {
  const [problem] = configProblems(config);
  if (!problem) return;
  const where = goalId ? `goal ${goalId}: ` : '';
  throw new ApiError(400, 'invalid_field', `${where}${problem.field}: ${problem.message}`);
}

/** Each goal's stored overrides and the config its checks run with (site keys under them). */
function goalLayers(stored: Map<string, AlertConfigInput>) {
  return [...stored]
    .filter(([goalId]) => goalId !== '')
    .map(([goalId, overrides]) => ({
      goalId,
      stored: overrides,
      effective: resolveConfig(stored.get(''), overrides),
    }));
}

alertRoutes.get('/admin/sites/:siteId/alerts/config', async (c) => {
  const { siteId } = await siteAdmin(c);
  const { site, stored } = await loadAlertConfigs(c.env.DB, siteId);
  return c.json({ stored: stored.get('') ?? {}, resolved: site, goals: goalLayers(stored) });
});

alertRoutes.get('/admin/sites/:siteId/goals/:goalId/alerts/config', async (c) => {
  const { siteId } = await siteAdmin(c);
  const goalId = c.req.param('goalId');
  await requireGoal(c.env.DB, siteId, goalId);
  const { stored } = await loadAlertConfigs(c.env.DB, siteId);
  return c.json({
    goalId,
    stored: stored.get(goalId) ?? {},
    site: stored.get('') ?? {},
    effective: resolveConfig(stored.get(''), stored.get(goalId)),
  });
});

async function saveConfig(
  db: D1Database,
  siteId: string,
  goalId: string,
  config: unknown,
  by: string,
  now: number,
) {
  await db
    .prepare(
      `INSERT INTO alert_configs (site_id, goal_id, config, updated_by, updated_at)
       VALUES (?, ?, ?, ?, ?) ON CONFLICT (site_id, goal_id) DO UPDATE
       SET config = excluded.config, updated_by = excluded.updated_by,
         updated_at = excluded.updated_at`,
    )
    .bind(siteId, goalId, JSON.stringify(config), by, now)
    .run();
}

// Stores exactly the keys given; the defaults fill the rest at read time.
alertRoutes.put('/admin/sites/:siteId/alerts/config', async (c) => {
  const { siteId, admin } = await siteAdmin(c);
  const input = await parseJson(c.req.raw, alertConfigInputSchema);
  const resolved = resolveConfig(input);
  refuseProblems(resolved);
  // A goal's stored overrides must still make sense laid over the new site keys.
  const { stored } = await loadAlertConfigs(c.env.DB, siteId);
  for (const [goalId, overrides] of stored) {
    if (goalId !== '') refuseProblems(resolveConfig(input, overrides), goalId);
  }
  await saveConfig(c.env.DB, siteId, '', input, admin.name, nowMs(c.env));
  return c.json({ stored: input, resolved });
});

// A goal's overrides apply to the checks that concern that goal alone (docs/ALERTS.md). Only
// the keys given are stored: the site's keys keep applying under them.
alertRoutes.put('/admin/sites/:siteId/goals/:goalId/alerts/config', async (c) => {
  const { siteId, admin } = await siteAdmin(c);
  const goalId = c.req.param('goalId');
  await requireGoal(c.env.DB, siteId, goalId);
  const input = await parseJson(c.req.raw, goalConfigInputSchema);
  const { stored } = await loadAlertConfigs(c.env.DB, siteId);
  const effective = resolveConfig(stored.get(''), input);
  refuseProblems(effective, goalId);
  await saveConfig(c.env.DB, siteId, goalId, input, admin.name, nowMs(c.env));
  return c.json({ goalId, stored: input, site: stored.get('') ?? {}, effective });
});

alertRoutes.post('/admin/sites/:siteId/alerts/channels', async (c) => {
  const { siteId } = await siteAdmin(c);
  const input = await parseJson(c.req.raw, channelInputSchema);
  const privateReason = allowsPrivateHosts(c.env) ? null : privateDestinationReason(input.url);
  if (privateReason) {
    throw new ApiError(
      400,
      'private_destination',
      `url: ${privateReason}; channels may only send to public hosts`,
    );
  }
  const id = crypto.randomUUID();
  const generated = input.kind === 'webhook' && !input.secret ? randomToken('whsec') : undefined;
  const secret =
    input.kind === 'webhook'
      ? (input.secret ?? generated)
      : input.kind === 'pagerduty'
        ? input.routingKey
        : null;
  await c.env.DB.prepare(
    `INSERT INTO alert_channels (id, site_id, kind, name, url, secret, min_severity, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  )
    .bind(id, siteId, input.kind, input.name, input.url, secret, input.minSeverity, nowMs(c.env))
    .run();
  return c.json({ id, kind: input.kind, secret: generated }, 201);
});

alertRoutes.get('/admin/sites/:siteId/alerts/channels', async (c) => {
  const { siteId } = await siteAdmin(c);
  const { results } = await c.env.DB.prepare(
    `SELECT id, kind, name, url, min_severity AS minSeverity, created_at AS createdAt,
       disabled_at AS disabledAt FROM alert_channels WHERE site_id = ? ORDER BY created_at`,
  )
    .bind(siteId)
    .all();
  return c.json({ channels: results });
});

alertRoutes.delete('/admin/sites/:siteId/alerts/channels/:channelId', async (c) => {
  const { siteId } = await siteAdmin(c);
  const result = await c.env.DB.prepare(
    `UPDATE alert_channels SET disabled_at = ?
     WHERE id = ? AND site_id = ? AND disabled_at IS NULL`,
  )
    .bind(nowMs(c.env), c.req.param('channelId'), siteId)
    .run();
  if (result.meta.changes === 0) throw new ApiError(404, 'channel_not_found', 'no such channel');
  return c.json({ disabled: true });
});

alertRoutes.get('/admin/sites/:siteId/alerts', async (c) => {
  const { siteId } = await siteAdmin(c);
  const { results } = await c.env.DB.prepare(
    `SELECT key, incident_id AS incidentId, status, kind, COALESCE(last_kind, kind) AS lastKind,
       severity, opened_at AS openedAt, last_notified_at AS lastNotifiedAt
     FROM alert_state WHERE site_id = ? AND status = 'open' ORDER BY opened_at`,
  )
    .bind(siteId)
    .all();
  return c.json({ open: results });
});

alertRoutes.get('/admin/sites/:siteId/alerts/history', async (c) => {
  const { siteId } = await siteAdmin(c);
  const goal = c.req.query('goal') ?? null;
  const limit = limitParam(c.req.query('limit'), 100, 1000);
  return c.json({ history: await listAlertHistory(c.env.DB, siteId, goal, limit) });
});

alertRoutes.get('/admin/sites/:siteId/alerts/deliveries', async (c) => {
  const { siteId } = await siteAdmin(c);
  const { results } = await c.env.DB.prepare(
    `SELECT o.id, o.history_id AS historyId, o.channel_id AS channelId, o.status, o.attempts,
       o.next_attempt_at AS nextAttemptAt, o.delivered_at AS deliveredAt, o.last_error AS lastError
     FROM alert_outbox o WHERE o.site_id = ? ORDER BY o.id DESC LIMIT 500`,
  )
    .bind(siteId)
    .all();
  return c.json({ deliveries: results });
});

alertRoutes.post('/admin/sites/:siteId/alerts/backtest', async (c) => {
  const { siteId } = await siteAdmin(c);
  const input = await parseJson(c.req.raw, backtestInputSchema);
  const from = Date.parse(input.from);
  const to = Date.parse(input.to);
  if (!(to > from) || to - from > MAX_BACKTEST_MS) {
    throw new ApiError(400, 'invalid_range', '"to" must be after "from", at most 31 days later');
  }
  const result = await backtestSite(c.env.DB, siteId, from, to, nowMs(c.env));
  return c.json({ site: siteId, from: input.from, to: input.to, ...result });
});
