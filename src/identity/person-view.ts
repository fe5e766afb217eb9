/**
 * One person seen from the site object's storage: their events by the identity rules (for the
 * funnel engine) and the explanation of which ids make them up, and why.
 */
import { computeAttempts } from '../funnel/engine';
import type { Goal } from '../funnel/definition';
import { goalKey, type PersonProgress } from '../funnel/progress-store';
import type { Segment } from '../funnel/segment';
import { byLinkTime } from './assign';
import { anonymousKey, MAX_EVENTS_PER_PERSON, userKey, type Resolution } from './id-graph';
import type { IdentityStore } from './identity-store';

export interface EventRow extends Record<string, SqlStorageValue> {
  /** The row's device key: `anon`, or '' when it has none (src/identity/site-state-do.ts). */
  dev: string;
  message_id: string;
  anon: string | null;
  user: string | null;
  ts: number;
  type: string;
  name: string | null;
  props: string | null;
  seg: string;
}

/**
 * The columns progress is computed from: an `EventRow`. The whole stored event (`raw`, about a
 * kilobyte) is read only where it is handed out (an export).
 */
const PROGRESS_COLUMNS = 'dev, message_id, anon, user, ts, type, name, props, seg';

/**
 * The stored rows that may count for a person key (the identity rules pick among them), with
 * `columns` (every column by default).
 */
function candidateRows(
  sql: SqlStorage,
  resolution: Resolution,
  key: string,
  columns = '*',
): EventRow[] {
  const id = key.slice(2);
  if (!key.startsWith('u:')) {
    return sql
      .exec<EventRow>(`SELECT ${columns} FROM events WHERE dev = ? AND user IS NULL`, id)
      .toArray();
  }
  // Id lists travel as one JSON parameter: a merged person may hold hundreds of ids.
  return sql
    .exec<EventRow>(
      `SELECT ${columns} FROM events WHERE user IN (SELECT value FROM json_each(?1))
       UNION SELECT ${columns} FROM events
       WHERE dev IN (SELECT value FROM json_each(?2)) AND user IS NULL`,
      JSON.stringify(resolution.usersOf(id)),
      JSON.stringify([...resolution.devicesOf(id)]),
    )
    .toArray();
}

/** Of the candidate rows, the events that count for the key, oldest first, and how many. */
function eventsOf(resolution: Resolution, key: string, rows: readonly EventRow[]) {
  const mine = rows
    .filter(
      (row) =>
        resolution.personOf({
          messageId: row.message_id,
          ts: row.ts,
          anonymousId: row.anon,
          userId: row.user,
        }) === key,
    )
    .map((row) => ({ ...row, messageId: row.message_id }))
    .sort(byLinkTime);
  return { total: mine.length, used: mine.slice(-MAX_EVENTS_PER_PERSON), all: mine };
}

/** Every stored event that counts for a person key, by the identity rules, oldest first. */
export function personRows(sql: SqlStorage, resolution: Resolution, key: string): EventRow[] {
  return eventsOf(resolution, key, candidateRows(sql, resolution, key)).all;
}

/** Runs every goal over the events that count for a person. */
function progressOf(
  resolution: Resolution,
  key: string,
  rows: readonly EventRow[],
  goals: readonly Goal[],
): { progress: PersonProgress; events: number; eventsUsed: number } {
  const { total, used } = eventsOf(resolution, key, rows);
  const events = used.map((row) => ({
    messageId: row.message_id,
    ts: row.ts,
    type: row.type,
    event: row.name,
    properties: row.props ? (JSON.parse(row.props) as Record<string, unknown>) : null,
    segment: JSON.parse(row.seg) as Segment,
  }));

  const attempts: PersonProgress['attempts'] = new Map();
  for (const goal of goals) {
    const found = computeAttempts(events, goal).map((attempt) => ({
      ...attempt,
      segment: (attempt.entry as (typeof events)[number]).segment,
    }));
    if (found.length > 0) attempts.set(goalKey(goal), found);
  }
  return { progress: { personId: key, attempts }, events: total, eventsUsed: used.length };
}

/** Gathers a person's events by the identity rules and runs every goal over them. */
export function computePerson(
  sql: SqlStorage,
  resolution: Resolution,
  key: string,
  goals: readonly Goal[],
): { progress: PersonProgress; events: number; eventsUsed: number } {
  return progressOf(resolution, key, candidateRows(sql, resolution, key, PROGRESS_COLUMNS), goals);
}

/**
 * `computePerson` for many people at once, in the order of `keys`: the events of every device
 * person (the most common kind, one per anonymous visitor) come from one query instead of one
 * each (docs/BENCHMARKS.md, processing).
 */
export function computePeople(
  sql: SqlStorage,
  resolution: Resolution,
  keys: readonly string[],
  goals: readonly Goal[],
): PersonProgress[] {
  const devices = keys.filter((key) => key.startsWith('a:')).map((key) => key.slice(2));
  const byDevice = new Map<string, EventRow[]>();
  if (devices.length > 0) {
    const rows = sql.exec<EventRow>(
      `SELECT ${PROGRESS_COLUMNS} FROM events
       WHERE dev IN (SELECT value FROM json_each(?)) AND user IS NULL`,
      JSON.stringify(devices),
    );
    for (const row of rows) {
      const list = byDevice.get(row.dev);
      if (list) list.push(row);
      else byDevice.set(row.dev, [row]);
    }
  }
  return keys.map((key) => {
    const rows = key.startsWith('a:')
      ? (byDevice.get(key.slice(2)) ?? [])
      : candidateRows(sql, resolution, key, PROGRESS_COLUMNS);
    return progressOf(resolution, key, rows, goals).progress;
  });
}

export interface ExplainAnswer {
  person: string;
  userIds: string[];
  anonymousIds: string[];
  /** Device links that count for this person, with the event that made each. */
  links: Array<{
    anonymousId: string;
    userId: string;
    messageId: string;
    type: string | null;
    ts: string;
  }>;
  merges: Array<{ userIds: [string, string]; messageId?: string; actionId?: number }>;
  refused: Array<{ messageId: string; reason: string; previousId: string; userId: string }>;
  ignored: Array<{ messageId: string; reason: string }>;
  /** For a device query: every person the device's events count for, by time. */
  deviceHistory?: Array<{ from: string; person: string; messageId: string }>;
  actions: Array<{
    id: number;
    kind: string;
    body: unknown;
    note: string | null;
    by: string;
    at: string;
    revertedAt: string | null;
  }>;
  events: number;
  eventsUsed: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Which ids make up the person of a user or device id, and why; null for an unknown id. */
export function explainPerson(
  sql: SqlStorage,
  identity: IdentityStore,
  resolution: Resolution,
  query: { userId?: string; anonymousId?: string },
): ExplainAnswer | null {
  const facts = identity.load();
  let person: string;
  let deviceHistory: ExplainAnswer['deviceHistory'];
  if (query.userId !== undefined) {
    if (!facts.users.has(query.userId)) return null;
    person = userKey(resolution.canonicalOf(query.userId));
  } else if (query.anonymousId !== undefined) {
    const device = query.anonymousId;
    const links = resolution.deviceLinks.get(device) ?? [];
    const seen =
      sql.exec('SELECT 1 FROM events WHERE dev = ? LIMIT 1', device).toArray().length > 0;
    if (!seen && links.length === 0 && !facts.aliases.some((a) => a.previousId === device))
      return null;
    deviceHistory = links.map((l) => ({
      from: iso(l.ts),
      person: userKey(resolution.canonicalOf(l.userId)),
      messageId: l.messageId,
    }));
    person = deviceHistory.at(-1)?.person ?? anonymousKey(device);
  } else {
    return null;
  }

  const canonical = person.startsWith('u:') ? person.slice(2) : null;
  const userIds = canonical ? [...resolution.usersOf(canonical)].sort() : [];
  const anonymousIds = canonical ? [...resolution.devicesOf(canonical)].sort() : [person.slice(2)];
  const mine = new Set(userIds);
  // A link is an event sent from the device: found by its key.
  const typeOf = (device: string, messageId: string) =>
    sql
      .exec<{
        type: string;
      }>('SELECT type FROM events WHERE dev = ? AND message_id = ?', device, messageId)
      .toArray()[0]?.type ?? null;
  const links = anonymousIds.flatMap((device) =>
    (resolution.deviceLinks.get(device) ?? [])
      .filter((l) => mine.has(l.userId))
      .map((l) => ({ ...l, type: typeOf(device, l.messageId), ts: iso(l.ts) })),
  );
  const involved = (ids: readonly string[]) =>
    ids.some((id) => mine.has(id) || anonymousIds.includes(id));
  const aliasById = new Map(facts.aliases.map((a) => [a.messageId, a]));
  const linkIds = new Set(
    [...facts.pairs, ...facts.aliases]
      .filter((l) => involved([l.userId, 'anonymousId' in l ? l.anonymousId : l.previousId]))
      .map((l) => l.messageId),
  );
  // Admin actions that concern these ids: merges of their users, splits of their links or merges.
  type Body = { userIds?: string[]; severedMessageIds?: string[]; severedActionIds?: number[] };
  const actions = identity.listActions().map((a) => ({ ...a, body: JSON.parse(a.body) as Body }));
  const mergesHere = new Set(
    actions.filter((a) => a.kind === 'merge' && involved(a.body.userIds ?? [])).map((a) => a.id),
  );
  const concerns = (a: (typeof actions)[number]) =>
    mergesHere.has(a.id) ||
    (a.body.severedMessageIds ?? []).some((id) => linkIds.has(id)) ||
    (a.body.severedActionIds ?? []).some((id) => mergesHere.has(id));
  const { total, used } = eventsOf(resolution, person, candidateRows(sql, resolution, person));
  return {
    person,
    userIds,
    anonymousIds,
    links,
    merges: resolution.merges
      .filter((m) => involved(m.userIds))
      .map((m) => ({ userIds: m.userIds, ...m.by })),
    refused: resolution.refused.flatMap((r) => {
      const alias = aliasById.get(r.messageId);
      if (!alias || !involved([alias.previousId, alias.userId])) return [];
      return [{ ...r, previousId: alias.previousId, userId: alias.userId }];
    }),
    ignored: resolution.ignored.filter((i) => linkIds.has(i.messageId)),
    deviceHistory,
    actions: actions.filter(concerns).map((a) => ({
      id: a.id,
      kind: a.kind,
      body: a.body,
      note: a.note,
      by: a.by,
      at: iso(a.at),
      revertedAt: a.reverted_at === null ? null : iso(a.reverted_at),
    })),
    events: total,
    eventsUsed: used.length,
  };
}
