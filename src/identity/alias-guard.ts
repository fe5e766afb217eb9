/**
 * The part of the alias guardrail the ingest path can answer at once (docs/IDENTITY.md): an
 * alias between two users that the site object's identity facts (or the same request) already
 * show as identified before the alias's event time is refused, and the client hears it as a
 * per-event warning. The site
 * object makes the final, retroactive decision with every event; this check only reports what
 * is already certain.
 */
import { logger } from '../lib/logger';
import type { StoredEvent } from '../ingest/normalize';
import type { Warning } from '../ingest/schema';
import { byLinkTime } from './assign';
import type { EventStamp } from './id-graph';

/** What the site object knows of some users and devices (`SiteState.guardFacts`). */
export interface GuardFacts {
  /** Each known user's earliest identifying (non-alias) event. */
  identified: Array<{ user: string; ts: number; messageId: string }>;
  /** Each user a device was linked to, with the earliest link's event time. */
  links: Array<{ anon: string; user: string; ts: number }>;
}

/** Looks the facts up; null when the request has no site object to ask (`DEFER_APPLY`). */
export type GuardLookup = ((users: string[], devices: string[]) => Promise<GuardFacts>) | null;

const NO_FACTS: GuardFacts = { identified: [], links: [] };

type Checked = {
  index: number;
  event: Pick<StoredEvent, 'type' | 'userId' | 'previousId' | 'anonymousId' | 'ts'> & {
    messageId: string;
  };
};

/** Warnings for the aliases of a request that join two users identified before the alias. */
export async function refusedAliasWarnings(
  lookup: GuardLookup,
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
    const facts = lookup ? await lookup(candidates as string[], []) : NO_FACTS;
    for (const row of facts.identified) note(row.user, { ts: row.ts, messageId: row.messageId });
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
  lookup: GuardLookup,
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
    const facts = lookup ? await lookup([], devices) : NO_FACTS;
    for (const row of facts.links) note(row.anon, row.user, row.ts);
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
