/**
 * The identity facts of a site inside its Durable Object's SQLite: user ids, device links,
 * aliases and admin actions, kept beside the events they come from so that the graph can be
 * rebuilt without scanning every event. Synchronous on purpose: every write here happens
 * between two awaits, so no other request of the object can interleave with it.
 */
import { eventKeySql } from '../ingest/event-packs';
import { byLinkTime, type Link } from './assign';
import type { AdminAction, AliasFact, IdentityFacts, UserFact } from './id-graph';

/** The identity part of a stored event. */
export interface IdentityEvent {
  messageId: string;
  ts: number;
  type: string;
  /** Null for an alias: its previous id goes to `previousId`. */
  anonymousId: string | null;
  userId: string | null;
  previousId: string | null;
}

export interface ActionRow extends Record<string, SqlStorageValue> {
  id: number;
  kind: string;
  body: string;
  note: string | null;
  by: string;
  at: number;
  reverted_at: number | null;
  reverted_by: string | null;
}

/**
 * Version 3 keeps when each user became identified (version 2 kept only whether); version 4
 * stores users and links WITHOUT ROWID; version 5 keys a link by device and message id, as the
 * events are keyed (one message id from two devices is two events), which also finds a device's
 * links with no index of its own.
 */
interface UserRow extends Record<string, SqlStorageValue> {
  user: string;
  first_ts: number;
  first_mid: string;
  ident_ts: number | null;
  ident_mid: string | null;
}

function userFact(row: UserRow): UserFact {
  return {
    firstTs: row.first_ts,
    firstMessageId: row.first_mid,
    identifiedAt:
      row.ident_ts === null || row.ident_mid === null
        ? null
        : { ts: row.ident_ts, messageId: row.ident_mid },
  };
}

/** `Omit` applied to each member of a union, so the members stay apart. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function actionOf(row: ActionRow): AdminAction {
  return { id: row.id, kind: row.kind, ...JSON.parse(row.body) } as AdminAction;
}

const SCHEMA_VERSION = '5';

export class IdentityStore {
  private facts: {
    users: Map<string, UserFact>;
    pairs: Link[];
    aliases: AliasFact[];
    actions: AdminAction[];
  } | null = null;

  constructor(private readonly sql: SqlStorage) {
    const version = sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'identity_schema'")
      .toArray()[0];
    const current = version?.value === SCHEMA_VERSION;
    // Users and links are derived from the events: an older shape is dropped and rebuilt below.
    // WITHOUT ROWID since version 4: the key is the row, so a new user or link writes one billed
    // row for it instead of two (docs/BENCHMARKS.md, cost).
    if (!current) {
      sql.exec('DROP TABLE IF EXISTS users');
      sql.exec('DROP TABLE IF EXISTS links');
    }
    sql.exec(`CREATE TABLE IF NOT EXISTS users (
      user TEXT PRIMARY KEY, first_ts INTEGER NOT NULL, first_mid TEXT NOT NULL,
      ident_ts INTEGER, ident_mid TEXT) WITHOUT ROWID`);
    sql.exec(`CREATE TABLE IF NOT EXISTS links (
      anon TEXT NOT NULL, message_id TEXT NOT NULL, user TEXT NOT NULL, ts INTEGER NOT NULL,
      PRIMARY KEY (anon, message_id)) WITHOUT ROWID`);
    sql.exec(`CREATE TABLE IF NOT EXISTS aliases (
      message_id TEXT PRIMARY KEY, prev TEXT NOT NULL, user TEXT NOT NULL, ts INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS actions (
      id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, body TEXT NOT NULL, note TEXT,
      by TEXT NOT NULL, at INTEGER NOT NULL, reverted_at INTEGER, reverted_by TEXT)`);
    if (!current) this.rebuildFromEvents();
  }

  /**
   * Derives the facts once from the stored events. Version 1 also kept an alias's previous id in
   * the events' `anon` column and had no fact tables: that id moves to the aliases table.
   */
  private rebuildFromEvents(): void {
    this.sql.exec(`INSERT OR IGNORE INTO aliases (message_id, prev, user, ts)
      SELECT message_id, anon, user, ts FROM events
      WHERE type = 'alias' AND anon IS NOT NULL AND user IS NOT NULL`);
    this.sql.exec("UPDATE events SET anon = NULL, dev = '' WHERE type = 'alias'");
    const rows = this.sql.exec<{
      message_id: string;
      anon: string | null;
      user: string | null;
      ts: number;
      type: string;
    }>('SELECT message_id, anon, user, ts, type FROM events WHERE user IS NOT NULL');
    for (const row of rows) {
      this.record({
        messageId: row.message_id,
        ts: row.ts,
        type: row.type,
        anonymousId: row.anon,
        userId: row.user,
        previousId: null,
      });
    }
    this.sql.exec(
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('identity_schema', ?)",
      SCHEMA_VERSION,
    );
    this.facts = null;
  }

  /**
   * Records the identity facts of a newly stored event. Returns true when the graph may have
   * changed (a new link, alias or user, an earlier first event, a user becoming identified).
   */
  record(event: IdentityEvent): boolean {
    let changed = false;
    if (event.userId !== null) {
      const row = this.sql
        .exec<UserRow>('SELECT * FROM users WHERE user = ?', event.userId)
        .toArray()[0];
      const before = row ? userFact(row) : null;
      const stamp = { ts: event.ts, messageId: event.messageId };
      const earlierFirst =
        !before || byLinkTime(stamp, { ts: before.firstTs, messageId: before.firstMessageId }) < 0;
      // Any event but an alias identifies its user; the earliest one says from when.
      const earlierIdentified =
        event.type !== 'alias' &&
        (!before?.identifiedAt || byLinkTime(stamp, before.identifiedAt) < 0);
      if (earlierFirst || earlierIdentified) {
        const fact: UserFact = {
          firstTs: earlierFirst ? stamp.ts : (before as UserFact).firstTs,
          firstMessageId: earlierFirst ? stamp.messageId : (before as UserFact).firstMessageId,
          identifiedAt: earlierIdentified ? stamp : (before?.identifiedAt ?? null),
        };
        this.sql.exec(
          `INSERT OR REPLACE INTO users (user, first_ts, first_mid, ident_ts, ident_mid)
           VALUES (?, ?, ?, ?, ?)`,
          event.userId,
          fact.firstTs,
          fact.firstMessageId,
          fact.identifiedAt?.ts ?? null,
          fact.identifiedAt?.messageId ?? null,
        );
        this.facts?.users.set(event.userId, fact);
        changed = true;
      }
    }
    if (event.type === 'alias' && event.previousId !== null && event.userId !== null) {
      this.sql.exec(
        'INSERT OR IGNORE INTO aliases (message_id, prev, user, ts) VALUES (?, ?, ?, ?)',
        event.messageId,
        event.previousId,
        event.userId,
        event.ts,
      );
      this.facts?.aliases.push({ ...event, previousId: event.previousId, userId: event.userId });
      changed = true;
    } else if (event.anonymousId !== null && event.userId !== null) {
      this.sql.exec(
        'INSERT OR IGNORE INTO links (message_id, anon, user, ts) VALUES (?, ?, ?, ?)',
        event.messageId,
        event.anonymousId,
        event.userId,
        event.ts,
      );
      this.facts?.pairs.push({ ...event, anonymousId: event.anonymousId, userId: event.userId });
      changed = true;
    }
    return changed;
  }

  /**
   * Deletes a person's identity facts (right to erasure): their users, and the links and aliases
   * made by their own events or naming their users. Links of a shared device made by another
   * person's events stay: they are that person's.
   */
  forgetPerson(person: {
    userIds: string[];
    messageIds: string[];
    /** Their events' keys, device + U+001F + message id: a link is keyed the same way. */
    eventKeys: string[];
  }): void {
    const users = JSON.stringify(person.userIds);
    const messages = JSON.stringify(person.messageIds);
    const inUsers = 'IN (SELECT value FROM json_each(?1))';
    const inMessages = 'IN (SELECT value FROM json_each(?2))';
    this.sql.exec(
      `DELETE FROM links WHERE user ${inUsers}
         OR ${eventKeySql('anon', 'message_id')} IN (SELECT value FROM json_each(?2))`,
      users,
      JSON.stringify(person.eventKeys),
    );
    // An alias has no device of its own (its key's device is ''): its message id is its key.
    this.sql.exec(
      `DELETE FROM aliases WHERE user ${inUsers} OR prev ${inUsers} OR message_id ${inMessages}`,
      users,
      messages,
    );
    this.sql.exec(`DELETE FROM users WHERE user ${inUsers}`, users);
    this.facts = null;
  }

  /**
   * The ids of an erased person that nothing stored names any more: their user ids, and their
   * device ids unless another person's events or links still carry them (a shared device).
   * Call after the person's events and facts are deleted.
   */
  unusedIds(userIds: readonly string[], deviceIds: Iterable<string>): Set<string> {
    const ids = new Set(userIds);
    for (const device of new Set(deviceIds)) {
      const used = this.sql
        .exec(
          `SELECT 1 FROM events WHERE dev = ?1 UNION ALL SELECT 1 FROM links WHERE anon = ?1
           UNION ALL SELECT 1 FROM aliases WHERE prev = ?1 OR user = ?1 LIMIT 1`,
          device,
        )
        .toArray();
      if (used.length === 0) ids.add(device);
    }
    return ids;
  }

  /**
   * Removes erased ids and message ids from every admin action, reverted ones included (their
   * records are shown by explain): a merge loses the erased user and is inert with fewer than
   * two, a split loses a target that names an erased id and the severed links of erased events.
   */
  forgetInActions(ids: ReadonlySet<string>, messageIds: readonly string[]): void {
    const messages = new Set(messageIds);
    for (const row of this.listActions()) {
      const action = actionOf(row);
      let changed = false;
      if (action.kind === 'merge') {
        const kept = action.userIds.filter((id) => !ids.has(id));
        changed = kept.length !== action.userIds.length;
        action.userIds = kept;
      } else {
        const target = action.target;
        if (target && ids.has('userId' in target ? target.userId : target.anonymousId)) {
          delete action.target;
          changed = true;
        }
        const kept = action.severedMessageIds.filter((id) => !messages.has(id));
        changed ||= kept.length !== action.severedMessageIds.length;
        action.severedMessageIds = kept;
      }
      if (!changed) continue;
      const { id, kind: _kind, ...body } = action;
      this.sql.exec(
        'UPDATE actions SET body = ? WHERE id = ?',
        JSON.stringify({ ...body, erased: true }),
        id,
      );
    }
    this.facts = null;
  }

  /** The facts the graph is resolved from, loaded once and then kept up to date in memory. */
  load(): IdentityFacts {
    if (this.facts) return this.facts;
    const users = new Map<string, UserFact>();
    for (const row of this.sql.exec<UserRow>('SELECT * FROM users')) {
      users.set(row.user, userFact(row));
    }
    const pairs = this.sql
      .exec<{ message_id: string; anon: string; user: string; ts: number }>('SELECT * FROM links')
      .toArray()
      .map((r) => ({ messageId: r.message_id, anonymousId: r.anon, userId: r.user, ts: r.ts }));
    const aliases = this.sql
      .exec<{ message_id: string; prev: string; user: string; ts: number }>('SELECT * FROM aliases')
      .toArray()
      .map((r) => ({ messageId: r.message_id, previousId: r.prev, userId: r.user, ts: r.ts }));
    this.facts = { users, pairs, aliases, actions: this.activeActions() };
    return this.facts;
  }

  private activeActions(): AdminAction[] {
    return this.sql
      .exec<ActionRow>('SELECT * FROM actions WHERE reverted_at IS NULL ORDER BY id')
      .toArray()
      .map(actionOf);
  }

  /** Every admin action, reverted ones included, for the explain answer. */
  listActions(): ActionRow[] {
    return this.sql.exec<ActionRow>('SELECT * FROM actions ORDER BY id').toArray();
  }

  /**
   * Records an admin action and returns its id.
   * TODO(someday): actions live only in this object's storage; mirroring them to D1 would let a
   * rebuild from D1's raw events keep them too.
   */
  addAction(
    action: DistributiveOmit<AdminAction, 'id'>,
    who: { by: string; at: number; note: string | null },
  ): number {
    const { kind, ...body } = action;
    const id = this.sql
      .exec<{
        id: number;
      }>(
        'INSERT INTO actions (kind, body, note, by, at) VALUES (?, ?, ?, ?, ?) RETURNING id',
        kind,
        JSON.stringify(body),
        who.note,
        who.by,
        who.at,
      )
      .one().id;
    if (this.facts) this.facts.actions = this.activeActions();
    return id;
  }

  /** Reverts an active action and returns it; null when there is no such active action. */
  revertAction(id: number, who: { by: string; at: number }): AdminAction | null {
    const row = this.sql
      .exec<ActionRow>(
        `UPDATE actions SET reverted_at = ?, reverted_by = ? WHERE id = ? AND reverted_at IS NULL
         RETURNING *`,
        who.at,
        who.by,
        id,
      )
      .toArray()[0];
    if (this.facts) this.facts.actions = this.activeActions();
    return row ? actionOf(row) : null;
  }
}
