/**
 * The step-health shell: for each site, load the series, evaluate the judged bucket, apply the
 * lifecycle and record actions (the cron), or replay a range with in-memory state (a backtest,
 * which delivers nothing and leaves live alert state alone).
 */
import { listCurrentGoals } from '../funnel/goal-store';
import { logger } from '../lib/logger';
import { loadAlertConfigs, loadAlertStates, claimSlot, recordAction } from './alert-store';
import { DAY_MS, HOUR_MS, judgedBucketEnd, WEEK_MS } from './baseline';
import { resolveConfig, type AlertConfig } from './config';
import { addToSummaries, type CheckSummary } from './check-summary';
import { namesOf } from '../funnel/definition';
import { evaluateSite, type Evaluation, type GoalSteps, type SiteSeries } from './evaluate';
import { decide, record, type AlertState } from './lifecycle';
import { ensureVolumes, loadSiteSeries } from './series-store';

/** Cron slots are 15 minutes: the default trigger; a cron firing twice in one slot runs once. */
export const SLOT_MS = 15 * 60_000;

interface SiteContext {
  goals: GoalSteps[];
  config: AlertConfig;
  goalConfigs: Map<string, AlertConfig>;
  fields: Array<{ event: string; field: string }>;
}

async function siteContext(db: D1Database, siteId: string): Promise<SiteContext> {
  const [stored, configs] = await Promise.all([
    listCurrentGoals(db, siteId),
    loadAlertConfigs(db, siteId),
  ]);
  // Volume checks follow event names. A step matched by page path, URL or person trait has no
  // event series of its own and is left out; an any-of step is judged by its first event name.
  // TODO(soon): judge path steps by page counts and any-of steps by their summed names.
  const goals = stored.map((goal) => ({
    goalId: goal.id,
    steps: goal.steps.flatMap((step) => {
      const [event] = namesOf(step);
      if (event === undefined) return [];
      return [{ event, filterProperties: (step.where ?? []).map((filter) => filter.property) }];
    }),
  }));
  const fields = new Map<string, { event: string; field: string }>();
  for (const goal of goals) {
    for (const step of goal.steps) {
      for (const field of [
        ...configs.site.watchFields,
        ...step.filterProperties.map((p) => `properties.${p}`),
      ]) {
        fields.set(`${step.event}\n${field}`, { event: step.event, field });
      }
    }
  }
  const goalConfigs = new Map<string, AlertConfig>();
  for (const [goalId, overrides] of configs.stored) {
    if (goalId !== '') goalConfigs.set(goalId, resolveConfig(configs.stored.get(''), overrides));
  }
  return { goals, config: configs.site, goalConfigs, fields: [...fields.values()] };
}

/** The hours to load: enough history for the site's config and every goal's overrides. */
function ranges(ctx: SiteContext, from: number, to: number) {
  const configs = [ctx.config, ...ctx.goalConfigs.values()];
  const historyMs = Math.max(
    ...configs.map((c) => Math.max(c.baselineWeeks * WEEK_MS, c.fallbackDays * DAY_MS)),
  );
  const windowMs = Math.max(...configs.map((c) => c.maxWindowHours * HOUR_MS));
  const volumesFrom = from - historyMs - windowMs;
  const recentFrom = from - windowMs - DAY_MS;
  return { volumesFrom: Math.floor(volumesFrom / HOUR_MS) * HOUR_MS, recentFrom, to };
}

async function loadFor(
  db: D1Database,
  siteId: string,
  ctx: SiteContext,
  from: number,
  to: number,
  now: number,
): Promise<SiteSeries> {
  const range = ranges(ctx, from, to);
  await ensureVolumes(db, siteId, range.volumesFrom, to, now);
  return loadSiteSeries(db, {
    siteId,
    from: range.volumesFrom,
    recentFrom: range.recentFrom,
    to,
    fields: ctx.fields,
  });
}

/** Runs the checks of one site for the cron at `now`; returns the actions recorded. */
export async function checkSite(db: D1Database, siteId: string, now: number): Promise<number> {
  const slot = Math.floor(now / SLOT_MS) * SLOT_MS;
  if (!(await claimSlot(db, siteId, slot, now))) return 0;
  const ctx = await siteContext(db, siteId);
  if (ctx.goals.length === 0 && ctx.config.rules.length === 0) return 0;
  const end = judgedBucketEnd(now, ctx.config.graceMinutes);
  const series = await loadFor(db, siteId, ctx, end, end, now);
  const states = await loadAlertStates(db, siteId);
  const activeUntil = new Map(
    [...states.values()].map((s) => [s.key, s.status === 'open' ? Infinity : s.lastNotifiedAt]),
  );

  let recorded = 0;
  for (const evaluation of evaluateSite({
    end,
    series,
    goals: ctx.goals,
    config: ctx.config,
    goalConfigs: ctx.goalConfigs,
    activeUntil,
  })) {
    const previous = states.get(evaluation.key);
    // An older run overlapping a newer one must not act on a state the newer one already moved.
    if (previous && previous.lastSlot >= slot) continue;
    const decision = decide(previous ?? null, evaluation.verdict, evaluation, now, ctx.config);
    if (!decision.action) continue;
    const done = await recordAction(db, {
      siteId,
      evaluation,
      decision: { ...decision, action: decision.action },
      previous,
      slot,
      now,
      config: ctx.config,
    });
    if (done) recorded += 1;
  }
  return recorded;
}

/** Runs every site's checks; a failing site is logged and does not stop the others. */
export async function checkAllSites(db: D1Database, now: number): Promise<number> {
  const { results } = await db.prepare('SELECT id FROM sites ORDER BY id').all<{ id: string }>();
  let recorded = 0;
  for (const { id } of results) {
    try {
      recorded += await checkSite(db, id, now);
    } catch (cause) {
      logger.error('alerts.check_failed', { site: id, cause });
    }
  }
  return recorded;
}

/** One line of a backtest: an action that would have been taken, with its numbers. */
export interface BacktestAction {
  at: string;
  site: string;
  goal: string | null;
  goals: string[];
  step: string | null;
  kind: string;
  key: string;
  action: 'open' | 'repeat' | 'resolve';
  reason: string | null;
  severity: string;
  observed: number;
  expected: number;
  window: { start: string; end: string };
  detail: Record<string, unknown>;
}

/**
 * Replays the checks hour by hour over [from, to) on stored events: each run at the end of a
 * bucket plus the grace period, as the cron would first judge it. State lives in memory; the
 * only write is the `step_volumes` backfill, a cache of counts any cron run would also make.
 * Returns the actions, each check's last evaluation and a summary of its last 24 runs.
 */
export async function backtestSite(
  db: D1Database,
  siteId: string,
  from: number,
  to: number,
  now: number,
): Promise<{ actions: BacktestAction[]; last: Evaluation[]; lastDay: CheckSummary[] }> {
  const ctx = await siteContext(db, siteId);
  const firstEnd = Math.ceil(from / HOUR_MS) * HOUR_MS;
  const lastEnd = Math.floor(to / HOUR_MS) * HOUR_MS;
  const series = await loadFor(db, siteId, ctx, firstEnd, lastEnd, now);
  const states = new Map<string, AlertState>();
  const actions: BacktestAction[] = [];
  let last: Evaluation[] = [];
  const lastDay = new Map<string, CheckSummary>();
  for (let end = firstEnd; end <= lastEnd; end += HOUR_MS) {
    const at = end + ctx.config.graceMinutes * 60_000;
    const activeUntil = new Map(
      [...states].map(([k, s]) => [k, s.status === 'open' ? Infinity : s.lastNotifiedAt]),
    );
    last = evaluateSite({
      end,
      series,
      goals: ctx.goals,
      config: ctx.config,
      goalConfigs: ctx.goalConfigs,
      activeUntil,
    });
    if (end > lastEnd - DAY_MS) addToSummaries(lastDay, last);
    for (const e of last) {
      const previous = states.get(e.key) ?? null;
      const decision = decide(previous, e.verdict, e, at, ctx.config);
      if (!decision.action) continue;
      const recorded = record(previous, decision.action, e, at);
      const { kind, severity } = recorded;
      states.set(e.key, recorded.state);
      actions.push({
        at: new Date(at).toISOString(),
        site: siteId,
        goal: e.goals[0] ?? null,
        goals: e.goals,
        step: e.step,
        kind,
        key: e.key,
        action: decision.action,
        reason: decision.reason,
        severity,
        observed: e.observed,
        expected: e.expected,
        window: {
          start: new Date(e.windowStart).toISOString(),
          end: new Date(e.windowEnd).toISOString(),
        },
        detail: { ...e.detail, ...recorded.detail },
      });
    }
  }
  return { actions, last, lastDay: [...lastDay.values()] };
}
