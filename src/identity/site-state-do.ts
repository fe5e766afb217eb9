/**
 * SiteState: the Durable Object that holds one site's people. It keeps every event of the site
 * in its own SQLite storage (who did what, when), stitches devices to users, recomputes each
 * touched person's attempts from event time and writes them to D1.
 *
 * One object per site, on purpose (docs/ARCHITECTURE.md): a merge is then a local transaction,
 * and an ingest request costs one object call whatever the number of people in it.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Env } from '../env';
import type { StoredEvent } from '../ingest/normalize';
import type { Goal } from '../funnel/definition';
import { computeAttempts } from '../funnel/engine';
import { listLiveGoals, markReady, type StoredGoal } from '../funnel/goal-store';
import {
  attemptRow,
  goalKey,
  writeProgress,
  type AttemptRow,
  type PersonProgress,
} from '../funnel/progress-store';
import { segmentOf, type Segment } from '../funnel/segment';
import { logger } from '../lib/logger';
import { anonymousKey, byLinkTime, personOf, userKey, type Link } from './assign';

interface EventRow extends Record<string, SqlStorageValue> {
  message_id: string;
  anon: string | null;
  user: string | null;
  ts: number;
  type: string;
  name: string | null;
  props: string | null;
  seg: string;
}

const propsJson = (value: Record<string, unknown> | null) => (value ? JSON.stringify(value) : null);

/** Goal definitions are re-read from D1 at most this often, and at once on `goalsChanged`. */
const GOALS_TTL_MS = 30_000;

export class SiteState extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | null = null;
  private goals: { siteId: string; loadedAt: number; list: StoredGoal[] } | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS events (
      message_id TEXT PRIMARY KEY, anon TEXT, user TEXT, ts INTEGER NOT NULL, type TEXT NOT NULL,
      name TEXT, props TEXT, seg TEXT NOT NULL)`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS events_anon ON events (anon)');
    this.sql.exec('CREATE INDEX IF NOT EXISTS events_user ON events (user)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)');
  }

  /**
   * Takes events already stored in D1, recomputes every person they touch and writes the
   * progress rows, then marks the ingest batch applied. Safe to repeat: events are kept once by
   * message id, and the people of every event passed are recomputed even if it was seen before
   * (a retry after an eviction must still reach D1).
   */
  async apply(siteId: string, batchId: string | null, events: StoredEvent[]): Promise<void> {
    this.rememberSite(siteId);
    // Storage writes and dirty marking are synchronous: no other request interleaves here.
    for (const event of events) {
      if (!event.messageId) continue;
      const anon = event.anonymousId ?? (event.type === 'alias' ? event.previousId : null);
      this.sql.exec(
        `INSERT OR IGNORE INTO events (message_id, anon, user, ts, type, name, props, seg)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        event.messageId,
        anon,
        event.userId,
        event.ts,
        event.type,
        event.event,
        // An identify call's traits stand in its properties: trait steps read them there.
        propsJson(event.type === 'identify' ? event.traits : event.properties),
        JSON.stringify(segmentOf(event.context)),
      );
      this.markDirty(anon, event.userId);
    }
    await this.flush(siteId);
    if (batchId) {
      await this.env.DB.prepare('UPDATE batches SET applied_at = ? WHERE id = ?')
        .bind(Date.now(), batchId)
        .run();
    }
  }

  /** Reloads goal definitions and rebuilds every person's progress for them. */
  async goalsChanged(siteId: string): Promise<{ people: number }> {
    this.rememberSite(siteId);
    this.goals = null;
    // The versions this rebuild covers; a version saved meanwhile triggers its own rebuild.
    const building = (await this.loadGoals(siteId)).map((g) => ({ id: g.id, version: g.version }));
    const users = this.sql.exec<{ user: string }>(
      'SELECT DISTINCT user FROM events WHERE user IS NOT NULL',
    );
    for (const { user } of users) this.dirty.add(userKey(user));
    const anons = this.sql.exec<{ anon: string }>(
      'SELECT DISTINCT anon FROM events WHERE anon IS NOT NULL',
    );
    for (const { anon } of anons) this.dirty.add(anonymousKey(anon));
    const people = this.dirty.size;
    await this.flush(siteId);
    await markReady(this.env.DB, siteId, building);
    this.goals = null;
    return { people };
  }

  /**
   * The report's slower path: every person's attempts on a goal that has no progress rows (a
   * mode or window override, an old version), as `attempts` rows, the counted one per person
   * entering in `[from, to)` (furthest required step, then earliest).
   */
  async viewAttempts(
    siteId: string,
    goal: Goal,
    from: number,
    to: number,
    columns: readonly string[],
  ): Promise<AttemptRow[]> {
    this.rememberSite(siteId);
    const keys = new Set<string>();
    for (const { user } of this.sql.exec<{ user: string }>(
      'SELECT DISTINCT user FROM events WHERE user IS NOT NULL',
    )) {
      keys.add(userKey(user));
    }
    for (const { anon } of this.sql.exec<{ anon: string }>(
      'SELECT DISTINCT anon FROM events WHERE anon IS NOT NULL',
    )) {
      keys.add(anonymousKey(anon));
    }
    const rows: AttemptRow[] = [];
    for (const key of keys) {
      const found = this.computePerson(key, [goal]).attempts.get(goalKey(goal)) ?? [];
      let best: (typeof found)[number] | undefined;
      for (const attempt of found) {
        const t1 = attempt.times[0] as number;
        if (t1 < from || t1 >= to) continue;
        if (!best || attempt.reached > best.reached) best = attempt;
      }
      if (!best) continue;
      // Only the columns the view reads cross the RPC boundary: rows are many.
      const full = attemptRow(best);
      const row: AttemptRow = { person_id: key };
      for (const column of columns) row[column] = full[column] ?? null;
      rows.push(row);
    }
    return rows;
  }

  /**
   * One person's events in this object's storage, by any of their ids (an admin export), and
   * with `erase` deleted too (right to erasure). Their progress rows in D1 are the caller's.
   */
  async personEvents(
    ids: { anonymousIds: string[]; userIds: string[] },
    erase: boolean,
  ): Promise<Array<Record<string, SqlStorageValue>>> {
    const where = `anon IN (SELECT value FROM json_each(?1))
      OR user IN (SELECT value FROM json_each(?2))`;
    const anons = JSON.stringify(ids.anonymousIds);
    const users = JSON.stringify(ids.userIds);
    const rows = this.sql.exec(`SELECT * FROM events WHERE ${where}`, anons, users).toArray();
    if (erase) this.sql.exec(`DELETE FROM events WHERE ${where}`, anons, users);
    return rows;
  }

  /** Counts kept in this object, for the admin status endpoint and tests. */
  async stats(): Promise<{ events: number; people: number }> {
    const events = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM events').one().n;
    const users = this.sql
      .exec<{ n: number }>('SELECT COUNT(DISTINCT user) AS n FROM events WHERE user IS NOT NULL')
      .one().n;
    const lone = this.sql
      .exec<{ n: number }>(
        `SELECT COUNT(DISTINCT anon) AS n FROM events e WHERE user IS NULL AND NOT EXISTS
           (SELECT 1 FROM events l WHERE l.anon = e.anon AND l.user IS NOT NULL)`,
      )
      .one().n;
    return { events, people: users + lone };
  }

  private rememberSite(siteId: string): void {
    const known = this.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'site'")
      .toArray()[0];
    if (known && known.value !== siteId) {
      throw new Error(`SiteState for ${known.value} was called for site ${siteId}`);
    }
    if (!known) this.sql.exec("INSERT INTO meta (key, value) VALUES ('site', ?)", siteId);
  }

  /** Marks the people an event can affect: its user, its device, and every user of the device. */
  private markDirty(anon: string | null, user: string | null): void {
    if (user !== null) this.dirty.add(userKey(user));
    if (anon === null) return;
    this.dirty.add(anonymousKey(anon));
    const linked = this.sql.exec<{ user: string }>(
      'SELECT DISTINCT user FROM events WHERE anon = ? AND user IS NOT NULL',
      anon,
    );
    for (const row of linked) this.dirty.add(userKey(row.user));
  }

  /**
   * Writes the progress of every dirty person to D1. One flush runs at a time: a caller that
   * arrives while one runs waits for it, and the loop keeps going until nothing is dirty, so
   * every write is computed from storage as it is at that moment and later writes land later.
   * This is what keeps awaited D1 I/O from interleaving stale progress over fresh (C33).
   */
  private flush(siteId: string): Promise<void> {
    this.flushing ??= this.runFlush(siteId).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async runFlush(siteId: string): Promise<void> {
    while (this.dirty.size > 0) {
      const goals = await this.loadGoals(siteId);
      const keys = [...this.dirty].slice(0, 500);
      for (const key of keys) this.dirty.delete(key);
      const people = keys.map((key) => this.computePerson(key, goals));
      try {
        await writeProgress(this.env.DB, siteId, goals, people);
      } catch (error) {
        for (const key of keys) this.dirty.add(key);
        logger.error('site_state.flush_failed', { site: siteId, people: keys.length, cause: error });
        throw error;
      }
    }
  }

  private async loadGoals(siteId: string): Promise<StoredGoal[]> {
    const now = Date.now();
    if (!this.goals || this.goals.siteId !== siteId || now - this.goals.loadedAt > GOALS_TTL_MS) {
      this.goals = { siteId, loadedAt: now, list: await listLiveGoals(this.env.DB, siteId) };
    }
    return this.goals.list;
  }

  /** Gathers a person's events by the identity rules and runs every goal over them. */
  private computePerson(key: string, goals: readonly Goal[]): PersonProgress {
    const id = key.slice(2);
    const rows =
      key.startsWith('u:')
        ? this.sql
            .exec<EventRow>(
              `SELECT * FROM events WHERE user = ?1
               UNION SELECT * FROM events WHERE user IS NULL AND anon IN
                 (SELECT anon FROM events WHERE user = ?1 AND anon IS NOT NULL)`,
              id,
            )
            .toArray()
        : this.sql.exec<EventRow>('SELECT * FROM events WHERE anon = ? AND user IS NULL', id).toArray();

    const linksByAnon = new Map<string, Link[]>();
    const linksOf = (anon: string): Link[] => {
      let links = linksByAnon.get(anon);
      if (!links) {
        links = this.sql
          .exec<{ user: string; ts: number; message_id: string }>(
            'SELECT user, ts, message_id FROM events WHERE anon = ? AND user IS NOT NULL',
            anon,
          )
          .toArray()
          .map((r) => ({ anonymousId: anon, userId: r.user, ts: r.ts, messageId: r.message_id }))
          .sort(byLinkTime);
        linksByAnon.set(anon, links);
      }
      return links;
    };

    const mine = rows.filter((row) => {
      const event = { messageId: row.message_id, ts: row.ts, anonymousId: row.anon, userId: row.user };
      return personOf(event, row.user === null && row.anon ? linksOf(row.anon) : []) === key;
    });
    const events = mine.map((row) => ({
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
    return { personId: key, attempts };
  }
}
