/**
 * Helpers of the alert tests that drive the real scheduled handler and admin API: a cron run at a
 * chosen time, hourly counts written into the volume cache, and the admin calls they make.
 */
import {
  createExecutionContext,
  createScheduledController,
  env,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import type { Env } from '../../src/env';
import worker from '../../src/index';
import { ADMIN } from './helpers';

export const H = 3_600_000;
/** The day the series below are built around: a Monday. */
export const T = Date.parse('2025-03-10T00:00:00Z');
const BASE = 'https://goalstep.test';

/**
 * Runs the real scheduled handler for the cron slot at `at`; `vars` replace Worker variables for
 * this run (the test bindings allow private channel hosts, a deployment does not).
 */
export async function runCron(at: number, vars: Partial<Env> = {}): Promise<void> {
  const controller = createScheduledController({ scheduledTime: at, cron: '*/15 * * * *' });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, { ...env, ...vars }, ctx);
  await waitOnExecutionContext(ctx);
}

/**
 * Hourly counts of `page`, `checkout` and `other` from five days before T to a day after it,
 * written straight into the volume cache with its coverage mark (the recorder is tested apart).
 */
export async function writeVolumes(
  siteId: string,
  rate: (event: string, hour: number) => number,
): Promise<void> {
  const statements: D1PreparedStatement[] = [];
  for (let hour = T - 5 * 24 * H; hour < T + 24 * H; hour += H) {
    for (const event of ['page', 'checkout', 'other']) {
      statements.push(
        env.DB.prepare(
          `INSERT INTO step_volumes (site_id, event, hour, count, updated_at, counted_to)
           VALUES (?, ?, ?, ?, 0, ?)`,
        ).bind(siteId, event, hour, rate(event, hour), hour + H),
      );
    }
  }
  statements.push(
    env.DB.prepare(
      'INSERT INTO volume_coverage (site_id, from_hour, to_hour) VALUES (?, ?, ?)',
    ).bind(siteId, T - 60 * 24 * H, T + 24 * H),
  );
  await env.DB.batch(statements);
}

/** An admin call: status and parsed JSON body. */
export async function adminCall(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await SELF.fetch(`${BASE}${path}`, {
    method,
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** One alert history row as the admin API lists it. */
export interface HistoryRow {
  incidentId: string;
  action: string;
  reason: string | null;
  kind: string;
  severity: string;
  key: string;
  observed: number;
  expected: number;
  detail: Record<string, unknown>;
}

/** The site's alert history, oldest first. */
export async function history(siteId: string): Promise<HistoryRow[]> {
  const { status, body } = await adminCall('GET', `/admin/sites/${siteId}/alerts/history`);
  expect(status).toBe(200);
  return (body.history as HistoryRow[]).reverse();
}
