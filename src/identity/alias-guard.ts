/**
 * The part of the alias guardrail the ingest path can answer at once (docs/IDENTITY.md): an
 * alias between two users that D1 (or the same request) already shows as identified is refused,
 * and the client hears it as a per-event warning. The site object makes the final, retroactive
 * decision with every event; this check only reports what is already certain.
 */
import { logger } from '../lib/logger';
import type { StoredEvent } from '../ingest/normalize';
import type { Warning } from '../ingest/schema';

type Checked = { index: number; event: Pick<StoredEvent, 'type' | 'userId' | 'previousId'> };

/** Warnings for the aliases of a request that join two identified users. */
export async function refusedAliasWarnings(
  db: D1Database,
  siteId: string,
  events: readonly Checked[],
): Promise<Warning[]> {
  const aliases = events.filter(
    (e) => e.event.type === 'alias' && e.event.previousId !== null && e.event.userId !== null &&
      e.event.previousId !== e.event.userId,
  );
  if (aliases.length === 0) return [];

  const identified = new Set<string>();
  for (const { event } of events) {
    if (event.type !== 'alias' && event.userId !== null) identified.add(event.userId);
  }
  const candidates = [...new Set(aliases.flatMap((a) => [a.event.previousId, a.event.userId]))];
  try {
    // The candidates travel as one JSON parameter (D1 binds at most 100 values per statement).
    const { results } = await db
      .prepare(
        `SELECT DISTINCT user_id FROM events WHERE site_id = ? AND type <> 'alias'
         AND user_id IN (SELECT value FROM json_each(?))`,
      )
      .bind(siteId, JSON.stringify(candidates))
      .all<{ user_id: string }>();
    for (const row of results) identified.add(row.user_id);
  } catch (error) {
    // Only the warning is lost: the site object still refuses the alias.
    logger.warn('ingest.alias_check_failed', { site: siteId, cause: error });
  }

  return aliases
    .filter((a) => identified.has(a.event.previousId as string) && identified.has(a.event.userId as string))
    .map((a) => ({
      index: a.index,
      code: 'alias_refused_identified_users',
      message:
        'previousId and userId are both identified users; they were not merged (an admin merge ' +
        'is the only way to join two known users)',
    }));
}
