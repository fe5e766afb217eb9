/**
 * The identity graph of one site (docs/IDENTITY.md). Pure: the site's identity facts in (user
 * ids, device links, aliases, admin actions), a resolution out that says which person every
 * event counts for and why. Nothing here depends on arrival order: every choice is made in
 * event-time order, ties by message id.
 */
import { byLinkTime, type Link } from './assign';

/** Device ids plus user ids one person may hold; links past it are ignored (docs/IDENTITY.md). */
export const MAX_IDS_PER_PERSON = 1_000;
/** The newest events of one person that its progress is computed from. */
export const MAX_EVENTS_PER_PERSON = 20_000;

/** An event's place in event-time order (ties by message id). */
export interface EventStamp {
  ts: number;
  messageId: string;
}

/** What the site knows about one user id: its first event and since when it is identified. */
export interface UserFact {
  firstTs: number;
  firstMessageId: string;
  /**
   * The earliest stored event other than an alias that carries this user id, from which on the
   * user is identified; null while only aliases name it.
   */
  identifiedAt: EventStamp | null;
}

export interface AliasFact {
  messageId: string;
  ts: number;
  previousId: string;
  userId: string;
}

/** The id an admin split was asked to take out. */
export type SplitTarget = { userId: string } | { anonymousId: string };

/**
 * An admin action: a merge of two users, or a split that severs links and merges (`target` is
 * absent on splits recorded before it was kept, and once erasure removed the id it named). A
 * merge names two users; erasure removes an erased user, and a merge left with fewer than two
 * is inert (`erased` marks an action erasure changed).
 */
export type AdminAction =
  | { id: number; kind: 'merge'; userIds: string[]; erased?: true }
  | {
      id: number;
      kind: 'split';
      target?: SplitTarget;
      /**
       * The split's time (epoch ms): it also severs every link of the target device, or every
       * user alias naming the target user, whose event time is at or before it, whenever that
       * event arrives. Absent on splits recorded before it was kept.
       */
      until?: number;
      severedMessageIds: string[];
      severedActionIds: number[];
      erased?: true;
    };

export interface IdentityFacts {
  users: ReadonlyMap<string, UserFact>;
  /** Every stored event carrying both ids, as a device link. */
  pairs: readonly Link[];
  aliases: readonly AliasFact[];
  /** Active (not reverted) admin actions. */
  actions: readonly AdminAction[];
}

export interface UserMerge {
  userIds: [string, string];
  by: { messageId: string } | { actionId: number };
}

export interface Resolution {
  /** The canonical user id of a user id's group (itself when ungrouped). */
  canonicalOf(userId: string): string;
  /** The user ids of a canonical user's group. */
  usersOf(canonical: string): readonly string[];
  /** The device ids linked to a canonical user's group. */
  devicesOf(canonical: string): ReadonlySet<string>;
  /** Accepted device links per device, in event-time order. */
  deviceLinks: ReadonlyMap<string, readonly Link[]>;
  merges: readonly UserMerge[];
  refused: ReadonlyArray<{ messageId: string; reason: 'alias_refused_identified_users' }>;
  ignored: ReadonlyArray<{ messageId: string; reason: 'person_id_limit' | 'severed_by_split' }>;
  /** The person key (`u:…` or `a:…`) an event counts for. */
  personOf(event: {
    ts: number;
    messageId: string;
    anonymousId: string | null;
    userId: string | null;
  }): string;
}

export const userKey = (userId: string) => `u:${userId}`;
export const anonymousKey = (anonymousId: string) => `a:${anonymousId}`;

/** Union-find over user ids; the root carries no meaning until `canonical` picks a name. */
class Groups {
  private readonly parent = new Map<string, string>();

  find(id: string): string {
    let root = id;
    while (this.parent.has(root) && this.parent.get(root) !== root)
      root = this.parent.get(root) as string;
    // Path compression keeps later finds flat.
    let node = id;
    while (node !== root) {
      const next = this.parent.get(node) as string;
      this.parent.set(node, root);
      node = next;
    }
    return root;
  }

  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(ra, rb);
  }
}

/** Resolves the site's facts into people. */
export function resolveIdentity(
  facts: IdentityFacts,
  limits: { maxIdsPerPerson: number } = { maxIdsPerPerson: MAX_IDS_PER_PERSON },
): Resolution {
  const severedMessages = new Set<string>();
  const severedActions = new Set<number>();
  // Per split id, the latest split time: links and aliases up to it are severed by event time,
  // so one that arrives after the split is severed as if it had come before.
  const deviceCuts = new Map<string, number>();
  const userCuts = new Map<string, number>();
  for (const action of facts.actions) {
    if (action.kind !== 'split') continue;
    for (const id of action.severedMessageIds) severedMessages.add(id);
    for (const id of action.severedActionIds) severedActions.add(id);
    const { target, until } = action;
    if (!target || until === undefined) continue;
    const [cuts, id] =
      'userId' in target ? [userCuts, target.userId] : [deviceCuts, target.anonymousId];
    cuts.set(id, Math.max(until, cuts.get(id) ?? until));
  }
  const cutBefore = (cuts: Map<string, number>, id: string, ts: number) =>
    (cuts.get(id) ?? -Infinity) >= ts;

  // Groups of users: admin merges first (explicit, no guardrail), then user-to-user aliases in
  // event-time order, each refused if both groups already held an identified user at the
  // alias's event time. A group is identified from its members' earliest identifying event.
  const groups = new Groups();
  const identifiedSince = new Map<string, EventStamp>();
  for (const [userId, fact] of facts.users) {
    if (fact.identifiedAt) identifiedSince.set(userId, fact.identifiedAt);
  }
  const identifiedBefore = (root: string, at: EventStamp) => {
    const since = identifiedSince.get(root);
    return since !== undefined && byLinkTime(since, at) < 0;
  };
  const join = (a: string, b: string) => {
    const ra = groups.find(a);
    const rb = groups.find(b);
    if (ra === rb) return;
    const sa = identifiedSince.get(ra);
    const sb = identifiedSince.get(rb);
    groups.union(ra, rb);
    const since = sa && sb ? (byLinkTime(sa, sb) <= 0 ? sa : sb) : (sa ?? sb);
    if (since) identifiedSince.set(groups.find(ra), since);
  };

  const merges: UserMerge[] = [];
  const refused: Array<{ messageId: string; reason: 'alias_refused_identified_users' }> = [];
  const ignored: Array<{ messageId: string; reason: 'person_id_limit' | 'severed_by_split' }> = [];
  for (const action of facts.actions) {
    if (action.kind !== 'merge' || severedActions.has(action.id)) continue;
    const [a, b] = action.userIds;
    if (a === undefined || b === undefined) continue;
    join(a, b);
    merges.push({ userIds: [a, b], by: { actionId: action.id } });
  }

  const deviceAliases: Link[] = [];
  const aliases = [...facts.aliases].sort(byLinkTime);
  for (const alias of aliases) {
    if (alias.previousId === alias.userId) continue;
    if (!facts.users.has(alias.previousId)) {
      deviceAliases.push({
        anonymousId: alias.previousId,
        userId: alias.userId,
        ts: alias.ts,
        messageId: alias.messageId,
      });
      continue;
    }
    if (
      severedMessages.has(alias.messageId) ||
      cutBefore(userCuts, alias.previousId, alias.ts) ||
      cutBefore(userCuts, alias.userId, alias.ts)
    ) {
      ignored.push({ messageId: alias.messageId, reason: 'severed_by_split' });
      continue;
    }
    const ra = groups.find(alias.previousId);
    const rb = groups.find(alias.userId);
    if (ra !== rb && identifiedBefore(ra, alias) && identifiedBefore(rb, alias)) {
      refused.push({ messageId: alias.messageId, reason: 'alias_refused_identified_users' });
      continue;
    }
    join(alias.previousId, alias.userId);
    merges.push({ userIds: [alias.previousId, alias.userId], by: { messageId: alias.messageId } });
  }

  // Canonical name per group: the identified user with the earliest first event, else the user
  // with the earliest first event; ties by the id's text.
  const members = new Map<string, string[]>();
  for (const userId of facts.users.keys()) {
    const root = groups.find(userId);
    const list = members.get(root);
    if (list) list.push(userId);
    else members.set(root, [userId]);
  }
  const canonicalByRoot = new Map<string, string>();
  for (const [root, ids] of members) {
    canonicalByRoot.set(
      root,
      ids.reduce((best, id) => (rankUser(facts, id, best) < 0 ? id : best)),
    );
  }
  const canonicalOf = (userId: string) => canonicalByRoot.get(groups.find(userId)) ?? userId;
  const usersByCanonical = new Map<string, string[]>();
  for (const [root, ids] of members) usersByCanonical.set(canonicalByRoot.get(root) as string, ids);

  // Device links in event-time order, within the per-person id limit.
  const devicesByCanonical = new Map<string, Set<string>>();
  const deviceLinks = new Map<string, Link[]>();
  for (const link of [...facts.pairs, ...deviceAliases].sort(byLinkTime)) {
    if (severedMessages.has(link.messageId) || cutBefore(deviceCuts, link.anonymousId, link.ts)) {
      ignored.push({ messageId: link.messageId, reason: 'severed_by_split' });
      continue;
    }
    const canonical = canonicalOf(link.userId);
    let devices = devicesByCanonical.get(canonical);
    if (!devices) devicesByCanonical.set(canonical, (devices = new Set()));
    const size = (usersByCanonical.get(canonical)?.length ?? 1) + devices.size;
    if (!devices.has(link.anonymousId) && size >= limits.maxIdsPerPerson) {
      ignored.push({ messageId: link.messageId, reason: 'person_id_limit' });
      continue;
    }
    devices.add(link.anonymousId);
    const list = deviceLinks.get(link.anonymousId);
    if (list) list.push(link);
    else deviceLinks.set(link.anonymousId, [link]);
  }

  const none = new Set<string>();
  return {
    canonicalOf,
    usersOf: (canonical) => usersByCanonical.get(canonical) ?? [canonical],
    devicesOf: (canonical) => devicesByCanonical.get(canonical) ?? none,
    deviceLinks,
    merges,
    refused,
    ignored,
    personOf(event) {
      if (event.userId !== null) return userKey(canonicalOf(event.userId));
      if (event.anonymousId === null) throw new Error('event without any id reached identity');
      const links = deviceLinks.get(event.anonymousId);
      const first = links?.[0];
      if (!links || !first) return anonymousKey(event.anonymousId);
      let current = first;
      for (const link of links) {
        if (byLinkTime(link, event) > 0) break;
        current = link;
      }
      return userKey(canonicalOf(current.userId));
    },
  };
}

/** Negative when user `a` names a group before user `b`. */
function rankUser(facts: IdentityFacts, a: string, b: string): number {
  const fa = facts.users.get(a) as UserFact;
  const fb = facts.users.get(b) as UserFact;
  const ia = fa.identifiedAt !== null;
  const ib = fb.identifiedAt !== null;
  if (ia !== ib) return ia ? -1 : 1;
  if (fa.firstTs !== fb.firstTs) return fa.firstTs - fb.firstTs;
  if (fa.firstMessageId !== fb.firstMessageId)
    return fa.firstMessageId < fb.firstMessageId ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The people whose events may have moved between two resolutions: for every device whose
 * links now point elsewhere, its own key and every person of its old and new links; for every
 * user whose canonical changed, its old and new person.
 */
export function changedPeople(
  before: Resolution,
  after: Resolution,
  userIds: Iterable<string>,
): Set<string> {
  const changed = new Set<string>();
  for (const userId of userIds) {
    const was = before.canonicalOf(userId);
    const now = after.canonicalOf(userId);
    if (was !== now) {
      changed.add(userKey(was));
      changed.add(userKey(now));
    }
  }
  const devices = new Set([...before.deviceLinks.keys(), ...after.deviceLinks.keys()]);
  for (const device of devices) {
    const was = (before.deviceLinks.get(device) ?? []).map(
      (l) => `${l.messageId}>${before.canonicalOf(l.userId)}`,
    );
    const now = (after.deviceLinks.get(device) ?? []).map(
      (l) => `${l.messageId}>${after.canonicalOf(l.userId)}`,
    );
    if (was.join('\n') === now.join('\n')) continue;
    changed.add(anonymousKey(device));
    for (const l of before.deviceLinks.get(device) ?? [])
      changed.add(userKey(before.canonicalOf(l.userId)));
    for (const l of after.deviceLinks.get(device) ?? [])
      changed.add(userKey(after.canonicalOf(l.userId)));
  }
  return changed;
}
