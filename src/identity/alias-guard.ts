/**
 * The part of the alias guardrail the ingest path can answer at once (docs/IDENTITY.md): an
 * alias between two users that D1 (or the same request) already shows as identified before the
 * alias's event time is refused, and the client hears it as a per-event warning. The site
 * object makes the final, retroactive decision with every event; this check only reports what
 * is already certain.
 */
import { logger } from '../lib/logger';
import type { StoredEvent } from '../ingest/normalize';
import type { Warning } from '../ingest/schema';
import { byLinkTime } from './assign';
import type { EventStamp } from './id-graph';

type Checked = {
  index: number;
  event: Pick<StoredEvent, 'type' | 'userId' | 'previousId' | 'anonymousId' | 'ts'> & {
    messageId: string;
  };
};

/** Warnings for the aliases of a request that join two users identified before the alias. */
export async function refusedAliasWarnings(
  db: D1Database,
  siteId: string,
  events: readonly Checked[],
): Promise<Warning[]> {
  const aliases = events.filter(
    (e) =>
      e.event.type === 'alias' &&
      e.event.previousId !== null &&
      e.event.userId !== null &&
      e.event.previousId !== e.event.userId,
  );
  if (aliases.length === 0) return [];

  // Per user, the earliest identifying (non-alias) event known here, in event-time order.
  const identifiedAt = new Map<string, EventStamp>();
  const note = (userId: string, stamp: EventStamp) => {
    const known = identifiedAt.get(userId);
    if (!known || byLinkTime(stamp, known) < 0) identifiedAt.set(userId, stamp);
  };
  for (const { event } of events) {
    if (event.type !== 'alias' && event.userId !== null) note(event.userId, event);
  }
  const candidates = [...new Set(aliases.flatMap((a) => [a.event.previousId, a.event.userId]))];
  try {
    // The candidates travel as one JSON parameter (D1 binds at most 100 values per statement).
    const { results } = await db
      .prepare(
        `SELECT user_id, ts, message_id FROM (
           SELECT user_id, ts, message_id,
             ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts, message_id) AS n
           FROM events WHERE site_id = ? AND type <> 'alias'
             AND user_id IN (SELECT value FROM json_each(?)))
         WHERE n = 1`,
      )
      .bind(siteId, JSON.stringify(candidates))
      .all<{ user_id: string; ts: number; message_id: string }>();
    for (const row of results) note(row.user_id, { ts: row.ts, messageId: row.message_id });
  } catch (error) {
    // Only the warning is lost: the site object still refuses the alias.
    logger.warn('ingest.alias_check_failed', { site: siteId, cause: error });
  }

  const before = (userId: string, alias: EventStamp) => {
    const since = identifiedAt.get(userId);
    return since !== undefined && byLinkTime(since, alias) < 0;
  };
  return aliases
    .filter(
      (a) =>
        before(a.event.previousId as string, a.event) && before(a.event.userId as string, a.event),
    )
    .map((a) => ({
      index: a.index,
      code: 'alias_refused_identified_users',
      message:
        'previousId and userId were both identified users before this alias; they were not ' +
        'merged (an admin merge is the only way to join two known users)',
    }));
}

/**
 * Informational warnings for identify calls that point a device already linked to another user
 * at a new user: the shared-device rule applies (the device counts for the new user from this
 * event on) and the two users are not merged. Only identify calls are checked, so ordinary
 * logged-in traffic costs no extra query.
 */
export async function deviceReassignedWarnings(
  db: D1Database,
  siteId: string,
  events: readonly Checked[],
): Promise<Warning[]> {
  const identifies = events.filter(
    (e) => e.event.type === 'identify' && e.event.anonymousId !== null && e.event.userId !== null,
  );
  if (identifies.length === 0) return [];

  // Per device, each linked user's earliest link time.
  const firstLink = new Map<string, Map<string, number>>();
  const note = (device: string, user: string, ts: number) => {
    let users = firstLink.get(device);
    if (!users) firstLink.set(device, (users = new Map()));
    users.set(user, Math.min(ts, users.get(user) ?? ts));
  };
  for (const { event } of events) {
    if (event.anonymousId !== null && event.userId !== null) {
      note(event.anonymousId, event.userId, event.ts);
    }
  }
  const devices = [...new Set(identifies.map((e) => e.event.anonymousId as string))];
  try {
    const { results } = await db
      .prepare(
        `SELECT anonymous_id, user_id, MIN(ts) AS ts FROM events
         WHERE site_id = ? AND user_id IS NOT NULL
           AND anonymous_id IN (SELECT value FROM json_each(?))
         GROUP BY anonymous_id, user_id`,
      )
      .bind(siteId, JSON.stringify(devices))
      .all<{ anonymous_id: string; user_id: string; ts: number }>();
    for (const row of results) note(row.anonymous_id, row.user_id, row.ts);
  } catch (error) {
    logger.warn('ingest.device_check_failed', { site: siteId, cause: error });
  }

  // Warn when another user held the device at or before this identify.
  const shared = (e: Checked) =>
    [...(firstLink.get(e.event.anonymousId as string) ?? [])].some(
      ([user, ts]) => user !== e.event.userId && ts <= e.event.ts,
    );
  return identifies.filter(shared).map((e) => ({
    index: e.index,
    code: 'device_shared',
    message:
      'this anonymousId is also linked to another userId; each user keeps their own events ' +
      'by event time and the users were not merged',
  }));
}
