/**
 * Restarts goal rebuilds that never finished: a Durable Object evicted mid-rebuild would leave a
 * goal showing its previous version for ever. Called by the cron; idempotent.
 */
import type { Env } from '../env';

/**
 * Asks each site with a goal whose current version is not yet ready, or whose ready version has
 * no rollups, to rebuild; returns them.
 */
export async function resumeRebuilds(env: Env): Promise<string[]> {
  // A ready version without built rollups predates them: a rebuild writes its rows' rollup
  // facts and builds them.
  const { results } = await env.DB.prepare(
    `SELECT DISTINCT site_id AS siteId FROM goals g
     WHERE ready_version IS NULL OR ready_version <> current_version
       OR NOT EXISTS (SELECT 1 FROM rollup_versions r
         WHERE r.site_id = g.site_id AND r.goal_id = g.id AND r.version = g.ready_version)`,
  ).all<{ siteId: string }>();
  const sites = results.map((r) => r.siteId);
  for (const siteId of sites) {
    await env.SITE_STATE.get(env.SITE_STATE.idFromName(siteId)).goalsChanged(siteId);
  }
  return sites;
}
