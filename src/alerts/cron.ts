/** The alerting part of the cron: run every site's checks, then send what the outbox holds. */
import { logger } from '../lib/logger';
import { loadAlertConfigs } from './alert-store';
import { deliverDue } from './delivery';
import { checkAllSites } from './run-checks';

const RUN_CLAIM_KEEP_MS = 7 * 86_400_000;

/** A link to the goal's report for the UTC day of the alert window, when the site set one. */
async function reportLinks(db: D1Database): Promise<Map<string, string>> {
  const { results } = await db
    .prepare("SELECT DISTINCT site_id FROM alert_outbox WHERE status = 'pending'")
    .all<{ site_id: string }>();
  const links = new Map<string, string>();
  for (const { site_id } of results) {
    const link = (await loadAlertConfigs(db, site_id)).site.reportLink;
    if (link) links.set(site_id, link.replace(/\/+$/, ''));
  }
  return links;
}

/**
 * Checks and delivery for the cron at `now` (the scheduled time it was given); `clock` is the
 * current time as each notice is signed; private channel hosts are sent to only when allowed.
 */
export async function runAlerts(
  db: D1Database,
  now: number,
  clock: () => number,
  allowPrivateHosts = false,
) {
  const recorded = await checkAllSites(db, now);
  // Slot claims only matter while a slot can still fire twice; a week is ample.
  await db
    .prepare('DELETE FROM alert_runs WHERE slot < ?')
    .bind(now - RUN_CLAIM_KEEP_MS)
    .run();
  const links = await reportLinks(db);
  const sent = await deliverDue(
    db,
    now,
    (siteId, goals, windowStart) => {
      const base = links.get(siteId);
      if (!base || goals.length === 0) return null;
      const day = new Date(windowStart).toISOString().slice(0, 10);
      const next = new Date(Date.parse(day) + 86_400_000).toISOString().slice(0, 10);
      return `${base}/${encodeURIComponent(goals[0] as string)}?from=${day}&to=${next}`;
    },
    clock,
    allowPrivateHosts,
  );
  logger.info('alerts.cron', { recorded, ...sent });
  return { recorded, ...sent };
}
