/**
 * Restarts goal rebuilds that never finished: a Durable Object evicted mid-rebuild would leave a
 * goal showing its previous version for ever. Called by the cron; idempotent.
 */
import type { Env } from '../env';

/** Asks each site with a goal whose current version is not yet ready to rebuild; returns them. */
export async function resumeRebuilds(env: Env): Promise<string[]> {
  const { results } = await env.DB.prepare(
    `SELECT DISTINCT site_id AS siteId FROM goals
     WHERE ready_version IS NULL OR ready_version <> current_version`,
  ).all<{ siteId: string }>();
  const sites = results.map((r) => r.siteId);
  for (const siteId of sites) {
    await env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId)).goalsChanged(siteId);
  }
  return sites;
}
