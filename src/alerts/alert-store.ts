/**
 * Alert state, history and outbox in D1. Every action is one D1 batch (a transaction) guarded by
 * compare-and-set, so a cron that fires twice or overlaps itself records and enqueues it once.
 */
import {
  resolveConfig,
  storedGoalConfigSchema,
  storedSiteConfigSchema,
  type AlertConfig,
  type AlertConfigInput,
} from './config';
import type { AlertNotice } from './payloads';
import type { Evaluation } from './evaluate';
import {
  record,
  SEVERITY_RANK,
  type AlertAction,
  type AlertState,
  type Decision,
  type Severity,
} from './lifecycle';
import { quietUntil } from './windows';

export interface StoredAlert extends AlertState {
  key: string;
  incidentId: string;
  lastSlot: number;
}

/** The stored state of every alert key of a site. */
export async function loadAlertStates(
  db: D1Database,
  siteId: string,
): Promise<Map<string, StoredAlert>> {
  const { results } = await db
    .prepare(
      `SELECT key, incident_id, status, kind, last_kind, severity, last_notified_at, last_magnitude,
         last_slot FROM alert_state WHERE site_id = ?`,
    )
    .bind(siteId)
    .all<{
      key: string;
      incident_id: string;
      status: 'open' | 'resolved';
      kind: string;
      last_kind: string | null;
      severity: Severity;
      last_notified_at: number;
      last_magnitude: number;
      last_slot: number;
    }>();
  return new Map(
    results.map((r) => [
      r.key,
      {
        key: r.key,
        incidentId: r.incident_id,
        status: r.status,
        kind: r.kind,
        lastKind: r.last_kind ?? r.kind,
        severity: r.severity,
        lastNotifiedAt: r.last_notified_at,
        lastMagnitude: r.last_magnitude,
        lastSlot: r.last_slot,
      },
    ]),
  );
}

/**
 * The site's config resolved over the defaults, and every stored layer as given (site under
 * `''`, goals under their ids): layers are merged at read time, never copied into each other.
 */
export async function loadAlertConfigs(
  db: D1Database,
  siteId: string,
): Promise<{ site: AlertConfig; stored: Map<string, AlertConfigInput> }> {
  const { results } = await db
    .prepare('SELECT goal_id, config FROM alert_configs WHERE site_id = ?')
    .bind(siteId)
    .all<{ goal_id: string; config: string }>();
  const stored = new Map<string, AlertConfigInput>();
  for (const row of results) {
    const schema = row.goal_id === '' ? storedSiteConfigSchema : storedGoalConfigSchema;
    const parsed = schema.safeParse(JSON.parse(row.config));
    // A row written by an older version that no longer validates falls back to the defaults.
    if (parsed.success) stored.set(row.goal_id, parsed.data);
  }
  return { site: resolveConfig(stored.get('')), stored };
}

/**
 * Records one action: moves the state (insert, reopen or update, each only if nobody else moved
 * it since it was read), inserts the history row only if this action's id won, and enqueues one
 * outbox row per matching channel. Returns true when this call recorded it.
 */
export async function recordAction(
  db: D1Database,
  input: {
    siteId: string;
    evaluation: Evaluation;
    decision: Decision & { action: AlertAction };
    previous: StoredAlert | undefined;
    slot: number;
    now: number;
    config: AlertConfig;
  },
): Promise<boolean> {
  const { siteId, evaluation: e, decision, previous, slot, now } = input;
  const actionId = crypto.randomUUID();
  const reopening = decision.action === 'open';
  const incidentId = reopening
    ? crypto.randomUUID()
    : (previous?.incidentId ?? crypto.randomUUID());
  const recorded = record(previous?.status === 'open' ? previous : null, decision.action, e, now);
  const { kind, severity } = recorded;
  const next = recorded.state;

  const state = reopening
    ? db
        .prepare(
          `INSERT INTO alert_state (site_id, key, incident_id, status, kind, last_kind, severity,
             opened_at, last_notified_at, last_magnitude, last_slot, action_id)
           VALUES (?1, ?2, ?3, 'open', ?4, ?4, ?5, ?6, ?6, ?7, ?8, ?9)
           ON CONFLICT (site_id, key) DO UPDATE SET incident_id = ?3, status = 'open', kind = ?4,
             last_kind = ?4, severity = ?5, opened_at = ?6, last_notified_at = ?6,
             last_magnitude = ?7, last_slot = ?8, action_id = ?9
           WHERE alert_state.status = 'resolved' AND alert_state.last_slot < ?8`,
        )
        .bind(siteId, e.key, incidentId, kind, severity, now, e.magnitude, slot, actionId)
    : db
        .prepare(
          `UPDATE alert_state SET status = ?1, last_kind = ?2, severity = ?3, last_notified_at = ?4,
             last_magnitude = ?5, last_slot = ?6, action_id = ?7
           WHERE site_id = ?8 AND key = ?9 AND status = 'open' AND incident_id = ?10
             AND last_slot < ?6`,
        )
        .bind(
          next.status,
          next.lastKind,
          next.severity,
          now,
          e.magnitude,
          slot,
          actionId,
          siteId,
          e.key,
          incidentId,
        );

  const history = db
    .prepare(
      `INSERT INTO alert_history (site_id, incident_id, key, action, reason, kind, severity, step,
         goals, at, window_start, window_end, observed, expected, detail)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
       WHERE EXISTS (SELECT 1 FROM alert_state WHERE site_id = ?1 AND key = ?3 AND action_id = ?16)
       ON CONFLICT DO NOTHING`,
    )
    .bind(
      siteId,
      incidentId,
      e.key,
      decision.action,
      decision.reason,
      kind,
      severity,
      e.step,
      JSON.stringify(e.goals),
      now,
      e.windowStart,
      e.windowEnd,
      e.observed,
      e.expected,
      JSON.stringify({ ...e.detail, ...recorded.detail }),
      actionId,
    );

  // Quiet windows hold notices below critical until they end; critical ones go at once.
  const held = severity === 'critical' ? null : quietUntil(input.config, now);
  const severities = Object.entries(SEVERITY_RANK)
    .filter(([, rank]) => rank <= SEVERITY_RANK[severity])
    .map(([name]) => name);
  const outbox = db
    .prepare(
      `INSERT INTO alert_outbox (site_id, history_id, channel_id, status, attempts,
         next_attempt_at, created_at)
       SELECT h.site_id, h.id, c.id, 'pending', 0, ?1, ?2
       FROM alert_history h JOIN alert_channels c ON c.site_id = h.site_id
       WHERE h.incident_id = ?3 AND h.action = ?4 AND h.at = ?2 AND c.disabled_at IS NULL
         AND c.min_severity IN (SELECT value FROM json_each(?5))
       ON CONFLICT DO NOTHING`,
    )
    .bind(held ?? now, now, incidentId, decision.action, JSON.stringify(severities));

  const [moved] = await db.batch([state, history, outbox]);
  return (moved?.meta.changes ?? 0) > 0;
}

/**
 * Claims a site's cron slot; false when another run (the same cron fired twice) already has it.
 */
export async function claimSlot(db: D1Database, siteId: string, slot: number, now: number) {
  const result = await db
    .prepare(
      'INSERT INTO alert_runs (site_id, slot, started_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    )
    .bind(siteId, slot, now)
    .run();
  return result.meta.changes > 0;
}

/** One alert action as stored: what a channel is sent, less the delivery and site. */
export type AlertHistoryEntry = Omit<
  AlertNotice,
  'deliveryId' | 'site' | 'reportUrl' | 'detail'
> & {
  id: number;
  detail: unknown;
};

/** Alert actions of a site, newest first; with `goalId`, those about that goal's steps. */
export async function listAlertHistory(
  db: D1Database,
  siteId: string,
  goalId: string | null,
  limit: number,
): Promise<AlertHistoryEntry[]> {
  const { results } = await db
    .prepare(
      `SELECT id, incident_id AS incidentId, key, action, reason, kind, severity, step, goals, at,
         window_start AS windowStart, window_end AS windowEnd, observed, expected, detail
       FROM alert_history WHERE site_id = ?1
         AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(goals) WHERE value = ?2))
       ORDER BY at DESC, id DESC LIMIT ?3`,
    )
    .bind(siteId, goalId, limit)
    .all<Omit<AlertHistoryEntry, 'goals' | 'detail'> & { goals: string; detail: string }>();
  return results.map((row) => ({
    ...row,
    goals: JSON.parse(row.goals) as string[],
    detail: JSON.parse(row.detail) as unknown,
  }));
}

/** One incident as the report's step-health panel shows it. */
export interface StepHealthIncident {
  incidentId: string;
  key: string;
  /** The kind and severity of its latest notice. */
  kind: string;
  severity: Severity;
  step: string | null;
  /** Start of the first window judged bad, and of the first judged recovered (null: open). */
  since: number;
  recoveredFrom: number | null;
  openNow: boolean;
  /** Open at some time in the report's range: began before its end, not recovered before it. */
  duringRange: boolean;
  observed: number;
  expected: number;
}

/**
 * The incidents about a goal's steps (and the site-level ones that list them) that were open
 * during [from, to) or are open now, newest first.
 */
export async function listStepHealth(
  db: D1Database,
  input: { siteId: string; goalId: string; from: number; to: number; limit: number },
): Promise<StepHealthIncident[]> {
  const { results } = await db
    .prepare(
      `WITH incidents AS (
         SELECT incident_id, MIN(window_start) AS since,
           MAX(CASE WHEN action = 'resolve' THEN window_start END) AS recovered_from,
           MAX(id) AS last_id
         FROM alert_history WHERE site_id = ?1
           AND EXISTS (SELECT 1 FROM json_each(goals) WHERE value = ?2)
         GROUP BY incident_id)
       SELECT i.incident_id AS incidentId, h.key, h.kind, h.severity, h.step, i.since,
         i.recovered_from AS recoveredFrom, h.observed, h.expected
       FROM incidents i JOIN alert_history h ON h.id = i.last_id
       WHERE i.recovered_from IS NULL OR (i.since < ?4 AND i.recovered_from > ?3)
       ORDER BY i.since DESC LIMIT ?5`,
    )
    .bind(input.siteId, input.goalId, input.from, input.to, input.limit)
    .all<Omit<StepHealthIncident, 'openNow' | 'duringRange'>>();
  return results.map((row) => ({
    ...row,
    openNow: row.recoveredFrom === null,
    duringRange:
      row.since < input.to && (row.recoveredFrom === null || row.recoveredFrom > input.from),
  }));
}
