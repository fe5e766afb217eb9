/**
 * SiteState: the Durable Object that holds one site's people. It keeps every event of the site
 * in its own SQLite storage (who did what, when), resolves the site's identity graph
 * (docs/IDENTITY.md), recomputes each touched person's attempts from event time and writes them
 * to D1.
 *
 * One object per site, on purpose (docs/ARCHITECTURE.md): a merge is then a local transaction,
 * and an ingest request costs one object call whatever the number of people in it.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Env } from '../env';
import type { GuardFacts } from './alias-guard';
import { deviceKey, type StateBatch } from './state-batch';
import type { Goal } from '../funnel/definition';
import { listLiveGoals, markReady, type StoredGoal } from '../funnel/goal-store';
import { attemptRow, goalKey, writeProgress, type AttemptRow } from '../funnel/progress-store';
import { rebuildRollups } from '../funnel/rollups';
import {
  erasePersonEventsStatements,
  eventKey,
  mirrorStatements,
  type PersonEvents,
} from '../ingest/event-packs';
import { logger } from '../lib/logger';
import {
  countAlarmSet,
  countInvocation,
  countObjectMs,
  meterEnv,
  meterSql,
  readTally,
  resetTally,
  type Tally,
} from '../lib/meter';
import { changedPeople, resolveIdentity, type AdminAction, type Resolution } from './id-graph';
import { IdentityStore, type IdentityEvent } from './identity-store';
import {
  computePeople,
  computePerson,
  explainPerson,
  personRows,
  type ExplainAnswer,
} from './person-view';

/** Goal definitions are re-read from D1 at most this often, and at once on `goalsChanged`. */
const GOALS_TTL_MS = 30_000;
/**
 * An ingest batch's people are written after this pause, with every batch that arrived during
 * it: a write cycle's fixed rows (its log row, its listing rows, the alarm) and the rollup rows
 * its people share are then billed once per pause, not once per beacon (docs/BENCHMARKS.md,
 * cost). It bounds the extra lag from 2xx to report. `FLUSH_PAUSE_MS` overrides it.
 */
const FLUSH_PAUSE_MS = 1000;

/** The pause in force: `FLUSH_PAUSE_MS` when a whole number of ms up to a minute, else 1 s. */
export function flushPauseMs(env: { FLUSH_PAUSE_MS?: string }): number {
  const set = env.FLUSH_PAUSE_MS?.trim();
  return set && /^\d+$/.test(set) && Number(set) <= 60_000 ? Number(set) : FLUSH_PAUSE_MS;
}
/**
 * The recovery after a lost write cycle recomputes the people of events received this long
 * before the last recorded cycle end too: instances of the object on different machines need
 * not agree on the time to the millisecond. Recomputing a person is idempotent.
 */
const RECOVERY_SLACK_MS = 60_000;
/**
 * The end of a write cycle is recorded (one row) at most this often: a recovery then recomputes
 * the people of up to this much more traffic, which costs CPU once, where the row would be
 * billed on every cycle of a quiet site.
 */
const CYCLE_MARK_EVERY_MS = 10_000;
/** Rounds an erasure runs while the person keeps sending new events, before it gives up. */
const ERASE_ROUNDS = 5;

/** The key (`eventKey`) of a stored event row, and of an event owed to D1. */
const rowKey = (row: { dev: SqlStorageValue; message_id: SqlStorageValue }) =>
  eventKey(String(row.dev), String(row.message_id));
const unmirroredKey = (e: { dev: string; messageId: string }) => eventKey(e.dev, e.messageId);

/** People recomputed and written per D1 batch of a flush. */
const FLUSH_CHUNK = 500;
/** How long without a new event ends a burst (`quiet`). */
const QUIET_MS = 50;
/**
 * Events copied to D1's packs per D1 batch of a flush (`mirror`), and the most characters of
 * their entries read at once: a batch's entries are read from storage into memory.
 */
const MIRROR_CHUNK = 5_000;
const MIRROR_CHARS = 8_000_000;
/**
 * A flush folds the rollup log into the rollups in its first write this long after the object's
 * first write since its last fold (a report's own fold does not move that time).
 * A fold writes each rollup key its logged rows touch once (src/funnel/rollups.ts), so the keys
 * of an hour's writes are written once, not once per minute: on a quiet site, whose few events
 * a minute share almost no key, that is most of a progress write's rows. When the fold is due is
 * kept in the object's storage (`meta.fold_due`), so an object evicted between a site's rare
 * events still folds hourly, not on every wake. Reports stay exact meanwhile: a rollup report
 * folds first, and `FOLD_EVERY_ENTRIES` bounds what it may find to fold.
 */
const FOLD_EVERY_MS = 3_600_000;
/**
 * ... or once the log holds at least this many entries (what a fold reads; rows that log alike
 * are one entry, src/funnel/rollups.ts): a report's own fold (and a fold's hold on D1's writer)
 * then stays bounded under heavy ingest, where a flush shares its rollup keys among many people
 * anyway. Counted in memory from what the log holds when an instance first writes, so evictions
 * between bursts do not reset it.
 */
const FOLD_EVERY_ENTRIES = 2_000;
/** People computed between two yields of an override view (about 100 ms at the Puffy shape). */
const VIEW_CHUNK = 250;
/**
 * People recomputed and written per chunk of a goal rebuild; an ingest during a rebuild waits
 * for one chunk at most.
 */
const REBUILD_CHUNK = 250;
/** How long an override view's answer is kept for repeats (below the report's 60 s freshness). */
const VIEW_MEMO_MS = 30_000;
/** How many override answers are kept at most. */
const VIEW_MEMO_SIZE = 4;
/**
 * How many different override views may wait for the one walk running; more are refused as
 * busy. Each walk takes seconds on a busy week: without a bound, a share link could queue
 * unbounded work on the site's object.
 */
export const VIEW_QUEUE_MAX = 4;

/** An override view's answer: its rows, or `busy` when too many other views wait their turn. */
export type ViewAnswer = { ok: true; rows: AttemptRow[] } | { ok: false; busy: true };

/** An admin call's outcome: data, or a refusal the route maps to an HTTP error. */
export type AdminOutcome<T> =
  | { ok: true; value: T }
  | { ok: false; status: 400 | 404 | 409; code: string; message: string };

/** What the site object holds about one person (admin export and erasure). */
export interface PersonRecord {
  person: string;
  userIds: string[];
  anonymousIds: string[];
  messageIds: string[];
  stateEvents: Array<Record<string, SqlStorageValue>>;
  /** With `erase`: how many of the person's events D1's packs held (first copies). */
  erasedEvents?: number;
}

/**
 * An event taken here whose copy D1's packs do not hold yet, by key: its entry (`raw`) is read
 * from storage when copied, so a long D1 outage holds keys in memory, not events.
 */
interface Unmirrored {
  dev: string;
  messageId: string;
  /** Its `received` stamp. */
  at: number;
}

export interface AdminWho {
  by: string;
  at: number;
  note: string | null;
}

const EVENTS_COLUMNS = `dev TEXT NOT NULL, message_id TEXT NOT NULL, anon TEXT, user TEXT,
  ts INTEGER NOT NULL, type TEXT NOT NULL, name TEXT, props TEXT, seg TEXT NOT NULL,
  received INTEGER, raw TEXT, PRIMARY KEY (dev, message_id)`;

/**
 * The object's events table, keyed by device (`dev`: the anonymous id, '' when there is none)
 * and message id, WITHOUT ROWID: the key is the row, and a device's events are found by it with
 * no index of their own. Only a user's events need an index, partial on a user id. An anonymous
 * web event then writes one billed row, an identified one two (docs/BENCHMARKS.md, cost).
 *
 * The key is what keeps each event once: ingest hands the object every valid event and its
 * answer (how many were new) is the request's `accepted`. A retry carries its first send's
 * device, so it is a duplicate here; one message id sent from two devices is two events. An
 * object created with an earlier table (rowid, or keyed by message id alone) is copied over once.
 *
 * `received` is when the object took the event (`receive`), with no index: only the recovery
 * after a lost write cycle reads it (see `SiteState.alarm`). Rows stored before it existed hold
 * NULL and were written long ago. `raw` is the whole event as D1's packs hold it, which the
 * write cycle copies to D1 (`mirror`); rows from before it (migration 0016 packed their D1
 * copies) hold NULL.
 */
export function createEventsTable(sql: SqlStorage): void {
  const existing = sql
    .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'")
    .toArray()[0];
  if (existing && !/\bdev TEXT NOT NULL\b/.test(existing.sql)) {
    sql.exec(`CREATE TABLE events_lean (${EVENTS_COLUMNS}) WITHOUT ROWID`);
    sql.exec(`INSERT OR IGNORE INTO events_lean
        (dev, message_id, anon, user, ts, type, name, props, seg)
      SELECT COALESCE(anon, ''), message_id, anon, user, ts, type, name, props, seg FROM events`);
    sql.exec('DROP TABLE events');
    sql.exec('ALTER TABLE events_lean RENAME TO events');
  }
  sql.exec(`CREATE TABLE IF NOT EXISTS events (${EVENTS_COLUMNS}) WITHOUT ROWID`);
  const columns = sql.exec<{ name: string }>('SELECT name FROM pragma_table_info(?)', 'events');
  const names = new Set(columns.toArray().map((c) => c.name));
  if (!names.has('received')) sql.exec('ALTER TABLE events ADD COLUMN received INTEGER');
  if (!names.has('raw')) sql.exec('ALTER TABLE events ADD COLUMN raw TEXT');
  sql.exec('CREATE INDEX IF NOT EXISTS events_user_set ON events (user) WHERE user IS NOT NULL');
}

/**
 * The durable dirty marks (people a graph change or an admin action made stale), WITHOUT ROWID:
 * a mark then writes one billed row and its removal one, where a rowid table with a text key
 * wrote two each. An older rowid table is copied over once.
 */
export function createDirtyTable(sql: SqlStorage): void {
  const existing = sql
    .exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dirty'")
    .toArray()[0];
  if (existing && !/WITHOUT ROWID/i.test(existing.sql)) {
    sql.exec('ALTER TABLE dirty RENAME TO dirty_rowid');
  }
  sql.exec(`CREATE TABLE IF NOT EXISTS dirty (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)
    WITHOUT ROWID`);
  if (existing && !/WITHOUT ROWID/i.test(existing.sql)) {
    sql.exec('INSERT INTO dirty (key, seq) SELECT key, seq FROM dirty_rowid');
    sql.exec('DROP TABLE dirty_rowid');
  }
}

export class SiteState extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly identity: IdentityStore;
  /** Dirty person keys with the sequence number of their latest marking (also in `dirty`). */
  private readonly dirty = new Map<string, number>();
  /** The dirty keys that also have a row in `dirty` (an eviction must not lose them). */
  private readonly persisted = new Set<string>();
  private sequence = 0;
  private resolution: Resolution | null = null;
  private flushing: Promise<void> | null = null;
  /**
   * When the next fold of the rollup log is due (`meta.fold_due`): an hour after the first write
   * since the last fold; null when nothing was written since, undefined until read from storage.
   */
  private foldDue: number | null | undefined = undefined;
  /**
   * Log entries written since the last fold: read from the log when an instance first writes
   * (an object evicted between bursts keeps the bound), then counted here.
   */
  private entriesSinceFold: number | undefined = undefined;
  /** The coalescing pause of reconciled batches under way, and the batches waiting for it. */
  private ingestFlush: Promise<void> | null = null;
  /** Whether this instance has set the alarm that writes what `receive` took, and for when. */
  private armed = false;
  private armedFor = 0;
  /** When `receive` last took a new event, and the pending check for a quiet site (`quiet`). */
  private lastTakenAt = 0;
  private quietCheck: ReturnType<typeof setTimeout> | null = null;
  /** Whether a predecessor instance may have left taken events unwritten (see `alarm`). */
  private recovering = false;
  /** Requests taken by `receive` whose people are not written yet (the status's pending). */
  private receipts = 0;
  /** When this instance last recorded a write cycle's end (`meta.cycle_end`). */
  private cycleMarkedAt = 0;
  /** Write cycles failed in a row (the alarm's backoff). */
  private failedCycles = 0;
  /** Events taken here and not yet copied to D1's packs, in the order taken (`mirror`). */
  private unmirrored: Unmirrored[] = [];
  /** Keys (`eventKey`) of events an erasure holds back from copying, and those held. */
  private readonly erasing = new Set<string>();
  private held: Unmirrored[] = [];
  /** The D1 copies the erasure under way has removed so far (`eraseCopies`). */
  private erasedCopies = 0;
  /** Erasures of D1 copies owed, run by the next mirror before its packs (`eraseCopies`). */
  private readonly erasures: Array<{ person: PersonEvents; done: (erased: number) => void }> = [];
  /** The last `received` stamp handed out: stamps only grow within an instance. */
  private lastStamp = 0;
  private readonly waitingBatches: string[] = [];
  private goals: { siteId: string; loadedAt: number; list: StoredGoal[] } | null = null;
  /** Views running or waiting for their turn, by view key (identical views share one). */
  private readonly viewsRunning = new Map<string, Promise<AttemptRow[]>>();
  /** Settles when the last queued walk has finished: walks run one at a time, in order. */
  private walkTail: Promise<unknown> = Promise.resolve();
  private viewsWaiting = 0;
  /** Walks running now, and the most that ever ran at once (one, by design; tests read it). */
  private walking = { now: 0, most: 0 };
  private readonly viewMemo = new Map<string, { at: number; rows: AttemptRow[] }>();
  private readonly viewCounts = { computed: 0, shared: 0, remembered: 0, refused: 0 };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, meterEnv(env));
    this.sql = meterSql(ctx.storage.sql, env);
    ctx.storage.transactionSync(() => createEventsTable(this.sql));
    this.sql.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)');
    // Dirty people survive an eviction: a recompute that was promised is still owed.
    ctx.storage.transactionSync(() => createDirtyTable(this.sql));
    this.identity = new IdentityStore(this.sql);
    for (const row of this.sql.exec<{ key: string; seq: number }>('SELECT key, seq FROM dirty')) {
      this.dirty.set(row.key, row.seq);
      this.persisted.add(row.key);
      this.sequence = Math.max(this.sequence, row.seq);
    }
    void ctx.blockConcurrencyWhile(async () => {
      // An alarm still set when an instance starts may be a write cycle its predecessor never
      // finished (an eviction, a restart): the first alarm recovers it.
      this.recovering = (await ctx.storage.getAlarm()) !== null;
      if (this.dirty.size > 0) await this.setAlarm(1_000);
    });
  }

  /** The usage meter's counters in this object's isolate (cost benchmark), reset if asked. */
  async meterTally(reset: boolean): Promise<Tally> {
    const tally = readTally();
    if (reset) resetTally();
    return tally;
  }

  /**
   * Writes the people of what `receive` took, finishes a recompute left owed by an eviction or a
   * failed D1 write (`dirty` rows), and recovers a write cycle a predecessor instance lost. A
   * failed write sets the alarm again (backing off up to a minute) instead of throwing: the
   * runtime gives up on an alarm that keeps throwing, and the alarm is what keeps a cycle
   * recoverable once its instance is gone.
   *
   * Recovery: an alarm this instance did not set, or one already set when it started, may be
   * a predecessor's cycle, whose taken events are stored here but whose people were only
   * marked in that instance's memory. Their events are found by `received` (a scan, no index:
   * this runs only after a lost instance) after the last recorded cycle end, less a slack.
   */
  override async alarm(): Promise<void> {
    countInvocation(this.env, 'alarm');
    const started = Date.now();
    try {
      await this.writeTaken();
      this.failedCycles = 0;
    } catch (error) {
      this.failedCycles += 1;
      const backoff = Math.min(60_000, 1_000 * 2 ** (this.failedCycles - 1));
      logger.error('site_state.cycle_failed', { retryInMs: backoff, cause: error });
      // Still owed: the people stay dirty in memory, and a new instance recovers them.
      await this.setAlarm(backoff);
      this.armed = true;
    } finally {
      countObjectMs(this.env, Date.now() - started);
    }
  }

  private async writeTaken(): Promise<void> {
    if (!this.armed) this.recovering = true;
    this.armed = false;
    const siteId = this.knownSite();
    if (!siteId) return;
    const recovered = this.recovering;
    if (recovered) this.markUnwritten();
    await this.flush(siteId);
    this.recovering = false;
    // A request taken during the flush was written by it too (the loop runs until nothing is
    // dirty); one taken after it armed the next alarm and marked someone dirty again.
    if (this.receipts === 0 && !recovered) return;
    if (this.markCycleEnd()) this.receipts = 0;
  }

  /**
   * Records that everything taken so far is written (`cycle_end`, read by the recovery), when
   * nothing is owed and the last mark is at least `CYCLE_MARK_EVERY_MS` old. Returns whether
   * nothing was owed.
   */
  private markCycleEnd(): boolean {
    if (this.dirty.size > 0 || this.unmirrored.length > 0) return false;
    const now = Date.now();
    if (now - this.cycleMarkedAt < CYCLE_MARK_EVERY_MS) return true;
    this.cycleMarkedAt = now;
    this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('cycle_end', ?)", String(now));
    return true;
  }

  /** Marks dirty the people of every event taken since the last recorded cycle end. */
  private markUnwritten(): void {
    const mark = this.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'cycle_end'")
      .toArray()[0];
    const since = mark ? Number(mark.value) - RECOVERY_SLACK_MS : 0;
    const resolution = this.resolve();
    const rows = this.sql.exec<{
      dev: string;
      message_id: string;
      anon: string | null;
      user: string | null;
      ts: number;
      copied: number;
      received: number;
    }>(
      `SELECT dev, message_id, anon, user, ts, raw IS NOT NULL AS copied, received FROM events
       WHERE received >= ?`,
      since,
    );
    const owed: Unmirrored[] = [];
    for (const row of rows) {
      const event = {
        messageId: row.message_id,
        anonymousId: row.anon,
        userId: row.user,
        ts: row.ts,
      };
      this.markDirty(resolution.personOf(event), false);
      // Copied to D1 again: a copy the lost cycle did write is read once (event-packs.ts).
      if (row.copied) owed.push({ dev: row.dev, messageId: row.message_id, at: row.received });
    }
    this.unmirrored = [...owed, ...this.unmirrored.filter((e) => e.at < since)];
  }

  /**
   * Takes stored events from the ingest path before its answer (the Worker awaits this): keeps
   * them here, updates the identity facts, and leaves their people to the alarm, which writes
   * every request taken in the pause together. What survives an eviction before the alarm is
   * the events (stored here, with when they were taken) and the alarm itself: see `alarm`. No
   * D1 batch record is needed, and no `dirty` row per person (docs/BENCHMARKS.md, cost).
   */
  async receive(siteId: string, batch: StateBatch): Promise<number> {
    this.rememberSite(siteId);
    // An event already held here was taken before: its cycle writes or recovers its person.
    const fresh = this.take(batch, this.stamp(), 'fresh');
    if (fresh === 0) return 0;
    this.lastTakenAt = Date.now();
    if (!this.armed) {
      const pause = flushPauseMs(this.env);
      await this.setAlarm(pause);
      this.armed = true;
      this.armedFor = Date.now() + pause;
    }
    // A full chunk waiting: its cycle starts when the requests stop (`quiet`).
    if (this.dirty.size >= FLUSH_CHUNK) {
      this.quietCheck ??= setTimeout(() => this.quiet(), QUIET_MS);
    }
    this.receipts += 1;
    return fresh;
  }

  /**
   * Starts the armed write cycle now when a full chunk of people waits and no request came for
   * `QUIET_MS`: the end of a burst. The pause is for coalescing a quiet site's beacons into one
   * cycle; a cycle of a full chunk gains nothing from waiting for more, and its last events would
   * wait the rest of the pause (docs/ARCHITECTURE.md, ingest).
   */
  private quiet(): void {
    this.quietCheck = null;
    if (!this.armed || this.flushing || this.failedCycles > 0) return;
    if (this.dirty.size < FLUSH_CHUNK) return;
    const now = Date.now();
    const since = now - this.lastTakenAt;
    if (since < QUIET_MS) {
      this.quietCheck = setTimeout(() => this.quiet(), QUIET_MS - since);
      return;
    }
    if (this.armedFor <= now) return;
    this.armedFor = now;
    this.setAlarm(0).catch((error: unknown) => {
      // The alarm set by `receive` still stands: the cycle starts at the end of the pause.
      logger.error('site_state.quiet_alarm_failed', { cause: error });
    });
  }

  /**
   * The identity facts the ingest guardrails read (src/identity/alias-guard.ts): when each of
   * `users` was first identified, and each user each of `devices` was linked to, from when.
   */
  async guardFacts(users: string[], devices: string[]): Promise<GuardFacts> {
    const identified = this.sql
      .exec<{ user: string; ts: number; messageId: string }>(
        `SELECT user, ident_ts AS ts, ident_mid AS messageId FROM users
         WHERE user IN (SELECT value FROM json_each(?)) AND ident_ts IS NOT NULL`,
        JSON.stringify(users),
      )
      .toArray();
    const links = this.sql
      .exec<{ anon: string; user: string; ts: number }>(
        `SELECT anon, user, MIN(ts) AS ts FROM links
         WHERE anon IN (SELECT value FROM json_each(?)) GROUP BY anon, user`,
        JSON.stringify(devices),
      )
      .toArray();
    return { identified, links };
  }

  /** A `received` stamp: now, or one more than the last if the clock has not moved past it. */
  private stamp(): number {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return this.lastStamp;
  }

  private async setAlarm(inMs: number): Promise<void> {
    countAlarmSet(this.env);
    await this.ctx.storage.setAlarm(Date.now() + inMs);
  }

  /**
   * The way in of a batch D1 holds as pending (the reconciler's, when `receive` failed or
   * `DEFER_APPLY` left it): writes its people and copies its events to D1 after the coalescing
   * pause, then deletes the batch's D1 record. Safe to repeat: events are kept once (by device
   * and message id), and the people of every event passed are recomputed and its events copied
   * again even if seen before (a copy made twice is read once).
   */
  async apply(siteId: string, batchId: string, batch: StateBatch): Promise<void> {
    this.rememberSite(siteId);
    this.take(batch, this.stamp(), 'every');
    this.waitingBatches.push(batchId);
    await this.flushIngest(siteId);
  }

  /**
   * Stores a batch's events (once each), records the identity facts of the new ones and marks
   * dirty, in memory, the person of every new event (`fresh`) or of every event (`every`: the
   * reconciler's batch, whose earlier hand-over may have stored the events and lost the write).
   * A batch's people need no `dirty` row, since what handed the batch over keeps it recoverable
   * (the alarm for `receive`, the D1 record for `apply`). People moved by a graph change are
   * marked durably: a replay would not move them again. Synchronous: no other request
   * interleaves with it. Returns how many events were new here.
   */
  private take(batch: StateBatch, receivedAt: number, mark: 'fresh' | 'every'): number {
    const before = this.resolve();
    let graphChanged = false;
    // One statement per chunk of the batch (a bound value is capped); it answers which events
    // are new here.
    const taken = batch.rows.flatMap((rows) =>
      this.sql
        .exec<{ dev: string; message_id: string }>(
          `INSERT OR IGNORE INTO events
             (dev, message_id, anon, user, ts, type, name, props, seg, received, raw)
           SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4,
             e.value ->> 5, e.value ->> 6, e.value ->> 7, e.value ->> 8, ?2, e.value -> 9
           FROM json_each(?1) e
           RETURNING dev, message_id`,
          rows,
          receivedAt,
        )
        .toArray(),
    );
    const fresh = new Set(taken.map(rowKey));
    const isFresh = (f: IdentityEvent) => fresh.has(eventKey(deviceKey(f), f.messageId));
    // Owed to D1: the new events, or with `every` all of them, since an earlier hand-over of
    // the batch may have stored them here and lost its copy (a copy made twice is read once).
    const owed =
      mark === 'every'
        ? batch.rows.flatMap((rows) =>
            (JSON.parse(rows) as string[][]).map((row) => ({
              dev: row[0] as string,
              message_id: row[1] as string,
            })),
          )
        : taken;
    for (const row of owed) {
      this.unmirrored.push({ dev: row.dev, messageId: row.message_id, at: receivedAt });
    }
    const marked = mark === 'every' ? batch.facts : batch.facts.filter(isFresh);
    for (const facts of marked) {
      // Only a new event with a user id (or an alias) can change the identity facts.
      if (isFresh(facts) && (facts.userId !== null || facts.type === 'alias')) {
        graphChanged = this.identity.record(facts) || graphChanged;
      }
    }
    if (graphChanged) this.regraph(before);
    const after = this.resolve();
    for (const event of marked) this.markDirty(after.personOf(event), false);
    return fresh.size;
  }

  /**
   * Waits the flush pause, flushes every dirty person, then marks applied (deletes the
   * D1 records of) the batches that were waiting when the pause ended: their people were dirty
   * before the flush began, and the flush runs until nothing is dirty. A batch not marked (an
   * eviction, a failed write) is handed back by the reconciler.
   */
  private flushIngest(siteId: string): Promise<void> {
    this.ingestFlush ??= (async () => {
      await scheduler.wait(flushPauseMs(this.env));
      this.ingestFlush = null;
      const batches = this.waitingBatches.splice(0);
      await this.flush(siteId);
      this.markCycleEnd();
      if (batches.length === 0) return;
      // Applied: the record goes (one billed row, where keeping it marked would be two).
      await this.env.DB.prepare('DELETE FROM batches WHERE id IN (SELECT value FROM json_each(?))')
        .bind(JSON.stringify(batches))
        .run();
    })();
    return this.ingestFlush;
  }

  /**
   * Reloads goal definitions, rebuilds every person's progress for them and the versions'
   * rollups, then marks the versions it covered ready, so reports switch to them only once they
   * are complete.
   *
   * It walks people in chunks of `REBUILD_CHUNK`, each flushed on its own, and yields between
   * chunks the way an override view does: an ingest arriving meanwhile waits for one chunk at
   * most, not for the whole site (a week of a busy site took 12 s as one flush). Reports keep
   * reading the previous ready version from D1 until `markReady` below.
   * TODO(someday): a new version's rebuild cut short by an eviction is restarted by the cron
   * (its version is not ready), an engine rebuild (`POST /rebuild`) is not; a rebuild marker in
   * `meta`, read by the alarm, would restart it too.
   */
  async goalsChanged(siteId: string): Promise<{ people: number }> {
    this.rememberSite(siteId);
    this.goals = null;
    // The versions this rebuild covers; a version saved meanwhile triggers its own rebuild.
    const building = (await this.loadGoals(siteId)).map((g) => ({ id: g.id, version: g.version }));
    // People who appear during the walk are written by their own ingest's flush, with the new
    // goals already loaded: the list taken here is enough.
    const people = [...this.people()];
    for (let start = 0; start < people.length; start += REBUILD_CHUNK) {
      // 1 ms, not 0, for the reason given in walkView.
      if (start > 0) await scheduler.wait(1);
      for (const key of people.slice(start, start + REBUILD_CHUNK)) this.markDirty(key);
      await this.flush(siteId);
    }
    // Every row of these versions is now written: their rollups are rebuilt from the rows once
    // (on an upgrade, rows written before rollups existed are what this corrects).
    await rebuildRollups(this.env.DB, siteId, building, Date.now());
    await markReady(this.env.DB, siteId, building);
    this.goals = null;
    return { people: people.length };
  }

  /**
   * The report's slower path: every person's attempts on a goal that has no progress rows (a
   * mode or window override, an old version), as `attempts` rows, the counted one per person
   * entering in `[from, to)` (furthest required step, then earliest).
   *
   * It walks people in chunks and yields between them, so ingest and other calls into this
   * object run while a large view computes (a whole week of a busy site takes seconds). One walk
   * runs at a time; different views wait their turn, at most `VIEW_QUEUE_MAX` of them, and more
   * are answered `busy`. Identical views asked at the same time share one computation (running
   * or waiting), and an answer is kept for `VIEW_MEMO_MS`, so the page, its JSON and its CSV cost
   * one walk; `fresh` (the admin bypass) skips the kept answer but still shares a walk.
   */
  async viewAttempts(
    siteId: string,
    goal: Goal,
    from: number,
    to: number,
    columns: readonly string[],
    options: { fresh?: boolean } = {},
  ): Promise<ViewAnswer> {
    this.rememberSite(siteId);
    const key = JSON.stringify([goal, from, to, columns]);
    const now = Date.now();
    for (const [old, { at }] of this.viewMemo) {
      if (now - at > VIEW_MEMO_MS) this.viewMemo.delete(old);
    }
    const kept = this.viewMemo.get(key);
    if (kept && !options.fresh) {
      this.viewCounts.remembered += 1;
      return { ok: true, rows: kept.rows };
    }
    const running = this.viewsRunning.get(key);
    if (running) {
      this.viewCounts.shared += 1;
      return { ok: true, rows: await running };
    }
    if (this.viewsWaiting >= VIEW_QUEUE_MAX) {
      this.viewCounts.refused += 1;
      return { ok: false, busy: true };
    }

    this.viewCounts.computed += 1;
    this.viewsWaiting += 1;
    const walk = this.walkTail
      .then(() => {
        this.viewsWaiting -= 1;
        return this.walkView(goal, from, to, columns);
      })
      .then((rows) => {
        this.viewMemo.set(key, { at: Date.now(), rows });
        // Rows of a busy week weigh megabytes: keep the few newest answers only.
        for (const old of [...this.viewMemo.keys()].slice(0, -VIEW_MEMO_SIZE)) {
          this.viewMemo.delete(old);
        }
        return rows;
      })
      .finally(() => this.viewsRunning.delete(key));
    // The next walk starts when this one settles, whether it failed or not.
    this.walkTail = walk.catch(() => undefined);
    this.viewsRunning.set(key, walk);
    return { ok: true, rows: await walk };
  }

  /** How often views were computed, shared with a walk, answered from memory or refused. */
  async viewStats(): Promise<{
    computed: number;
    shared: number;
    remembered: number;
    refused: number;
    mostAtOnce: number;
  }> {
    return { ...this.viewCounts, mostAtOnce: this.walking.most };
  }

  private async walkView(
    goal: Goal,
    from: number,
    to: number,
    columns: readonly string[],
  ): Promise<AttemptRow[]> {
    // One identity snapshot for the whole walk: the people partition stays the one taken here
    // even when a merge lands between chunks, so nobody is counted under two keys. Events that
    // arrive meanwhile are read by the chunks that come after them.
    const resolution = this.resolve();
    const people = [...this.people()];
    const rows: AttemptRow[] = [];
    this.walking.now += 1;
    this.walking.most = Math.max(this.walking.most, this.walking.now);
    try {
      for (let start = 0; start < people.length; start += VIEW_CHUNK) {
        // A timer lets other calls in: the input gate is open while no storage operation runs.
        // 1 ms, not 0: a timer already due may run before the event loop polls for new calls
        // (measured locally: with 0 an ingest still waited for nearly the whole walk).
        if (start > 0) await scheduler.wait(1);
        for (const key of people.slice(start, start + VIEW_CHUNK)) {
          const row = this.viewRow(resolution, key, goal, from, to, columns);
          if (row) rows.push(row);
        }
      }
    } finally {
      this.walking.now -= 1;
    }
    return rows;
  }

  private viewRow(
    resolution: Resolution,
    key: string,
    goal: Goal,
    from: number,
    to: number,
    columns: readonly string[],
  ): AttemptRow | null {
    const { progress } = computePerson(this.sql, resolution, key, [goal]);
    const found = progress.attempts.get(goalKey(goal)) ?? [];
    let best: (typeof found)[number] | undefined;
    for (const attempt of found) {
      const t1 = attempt.times[0] as number;
      if (t1 < from || t1 >= to) continue;
      if (!best || attempt.reached > best.reached) best = attempt;
    }
    if (!best) return null;
    // Only the columns the view reads cross the RPC boundary: rows are many.
    const full = attemptRow(best);
    const row: AttemptRow = { person_id: key };
    for (const column of columns) row[column] = full[column] ?? null;
    return row;
  }

  /**
   * One person's data in this object's storage, found by one of their ids by the identity rules
   * (a device id means the person the device belongs to now), and with `erase` deleted too
   * (right to erasure): their events and their identity facts, never another person's. Null
   * when no event carries the id.
   */
  async personRecord(
    siteId: string,
    query: { userId?: string; anonymousId?: string },
    erase: boolean,
  ): Promise<PersonRecord | null> {
    this.rememberSite(siteId);
    // What D1 is read or erased for must be there first: copy what was taken (`mirror`).
    if (this.unmirrored.length > 0 || this.flushing) await this.flush(siteId);
    const resolution = this.resolve();
    const answer = explainPerson(this.sql, this.identity, resolution, query);
    if (!answer) return null;
    const rows = erase
      ? await this.eraseCopies(siteId, answer.person)
      : personRows(this.sql, resolution, answer.person);
    const record: PersonRecord = {
      person: answer.person,
      userIds: answer.userIds,
      anonymousIds: answer.anonymousIds,
      messageIds: rows.map((row) => row.message_id),
      stateEvents: rows,
      erasedEvents: erase ? this.erasedCopies : undefined,
    };
    if (erase) {
      // Synchronous from here on: D1 holds no copy of these rows, and none can be made now.
      const before = this.resolve();
      for (const row of rows) {
        this.sql.exec(
          'DELETE FROM events WHERE dev = ? AND message_id = ?',
          row.dev,
          row.message_id,
        );
      }
      const eventKeys = rows.map(rowKey);
      this.identity.forgetPerson({ ...record, eventKeys });
      // Admin actions naming an erased id would otherwise keep it, and merge its new events
      // back into one person (docs/IDENTITY.md, erasure).
      // Devices split away from the person still appear on the events they sent from them.
      const devices = [...record.anonymousIds, ...rows.flatMap((row) => row.anon ?? [])];
      const erased = this.identity.unusedIds(record.userIds, devices);
      this.identity.forgetInActions(erased, record.messageIds);
      this.regraph(before);
      this.release(new Set(eventKeys), false);
    }
    return record;
  }

  /**
   * Removes every D1 copy of a person's events before this object forgets them, so a failure
   * leaves the person whole here and the admin's retry finds them. Their events are held back
   * from copying meanwhile (`erasing`); an event of theirs taken during a round's D1 write is
   * erased by the next round. Resolves with the person's rows once a round found nothing new,
   * the count in `erasedCopies`.
   */
  private async eraseCopies(
    siteId: string,
    person: string,
  ): Promise<ReturnType<typeof personRows>> {
    const keys = new Set<string>();
    this.erasedCopies = 0;
    try {
      for (let round = 0; ; round += 1) {
        const rows = personRows(this.sql, this.resolve(), person);
        const added = rows.filter((row) => !keys.has(rowKey(row)));
        if (round > 0 && added.length === 0) return rows;
        if (round === ERASE_ROUNDS) throw new Error('the person kept sending during the erasure');
        for (const row of added) {
          keys.add(rowKey(row));
          this.erasing.add(rowKey(row));
        }
        this.held.push(...this.unmirrored.filter((e) => keys.has(unmirroredKey(e))));
        this.unmirrored = this.unmirrored.filter((e) => !keys.has(unmirroredKey(e)));
        const events = rows.map((row) => ({
          device: String(row.dev),
          messageId: String(row.message_id),
          ts: Number(row.ts),
        }));
        const owed = {
          person: { events },
          done: (n: number) => (this.erasedCopies += n),
        };
        this.erasures.push(owed);
        try {
          while (this.erasures.includes(owed)) await this.flush(siteId);
        } finally {
          const at = this.erasures.indexOf(owed);
          if (at >= 0) this.erasures.splice(at, 1);
        }
      }
    } catch (error) {
      // Abandoned: the person stays whole here, and what was held is owed to D1 again.
      this.release(keys, true);
      throw error;
    }
  }

  /** Ends the hold on `keys`: what was held goes back to be copied (`copy`) or is dropped. */
  private release(keys: ReadonlySet<string>, copy: boolean): void {
    for (const key of keys) this.erasing.delete(key);
    const back = this.held.filter((e) => keys.has(unmirroredKey(e)));
    this.held = this.held.filter((e) => !keys.has(unmirroredKey(e)));
    this.unmirrored = this.unmirrored.filter((e) => !keys.has(unmirroredKey(e)));
    if (copy) this.unmirrored.unshift(...back);
  }

  /**
   * Requests taken by `receive` whose people are not written yet, plus one while a lost write
   * cycle waits for its recovery (the site status adds these to its pending batches).
   */
  async pending(): Promise<number> {
    return this.receipts + (this.recovering ? 1 : 0);
  }

  /** Counts kept in this object, for the admin identity summary and tests. */
  async stats(): Promise<{
    events: number;
    people: number;
    users: number;
    devices: number;
    linkedDevices: number;
    /** People (canonical users) holding at least one linked device. */
    peopleWithDevices: number;
    userMerges: number;
    refusedAliases: number;
  }> {
    const resolution = this.resolve();
    const events = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM events').one().n;
    const devices = this.sql
      .exec<{ n: number }>(
        `SELECT COUNT(*) AS n FROM (SELECT dev FROM events WHERE dev <> ''
           UNION SELECT prev FROM aliases WHERE prev NOT IN (SELECT user FROM users))`,
      )
      .one().n;
    return {
      events,
      people: this.people().size,
      users: this.identity.load().users.size,
      devices,
      linkedDevices: resolution.deviceLinks.size,
      peopleWithDevices: new Set(
        [...resolution.deviceLinks.values()].flatMap((links) =>
          links.map((l) => resolution.canonicalOf(l.userId)),
        ),
      ).size,
      userMerges: resolution.merges.length,
      refusedAliases: resolution.refused.length,
    };
  }

  /** Which ids make up the person of a user or device id, and why. */
  async explain(query: {
    userId?: string;
    anonymousId?: string;
  }): Promise<AdminOutcome<ExplainAnswer>> {
    const answer = explainPerson(this.sql, this.identity, this.resolve(), query);
    if (!answer)
      return {
        ok: false,
        status: 404,
        code: 'person_not_found',
        message: 'no event carries that id',
      };
    return { ok: true, value: answer };
  }

  /** Merges two known users explicitly (the only way to join two identified users). */
  async merge(
    siteId: string,
    userIds: [string, string],
    who: AdminWho,
  ): Promise<AdminOutcome<{ actionId: number; person: string }>> {
    this.rememberSite(siteId);
    const facts = this.identity.load();
    const unknown = userIds.find((id) => !facts.users.has(id));
    if (unknown !== undefined) {
      return {
        ok: false,
        status: 404,
        code: 'user_not_found',
        message: `no event carries userId ${unknown}`,
      };
    }
    if (userIds[0] === userIds[1]) {
      return {
        ok: false,
        status: 400,
        code: 'same_user',
        message: 'a user cannot be merged with itself',
      };
    }
    const before = this.resolve();
    if (before.canonicalOf(userIds[0]) === before.canonicalOf(userIds[1])) {
      return {
        ok: false,
        status: 409,
        code: 'already_merged',
        message: 'the two users are already one person',
      };
    }
    const actionId = this.identity.addAction({ kind: 'merge', userIds }, who);
    this.regraph(before);
    await this.flush(siteId);
    logger.info('identity.merged', { site: siteId, action: actionId, by: who.by });
    return { ok: true, value: { actionId, person: `u:${this.resolve().canonicalOf(userIds[0])}` } };
  }

  /**
   * Takes an id back out of its person: for a device, severs every link of it up to now by event
   * time; for a user, every admin merge in effect and every alias up to now that involves it.
   * Links or aliases that arrive later but are older than the split are severed too (`until`).
   */
  async split(
    siteId: string,
    query: { userId?: string; anonymousId?: string },
    who: AdminWho,
  ): Promise<AdminOutcome<{ actionId: number; severed: number }>> {
    this.rememberSite(siteId);
    const facts = this.identity.load();
    const before = this.resolve();
    let severedMessageIds: string[] = [];
    let severedActionIds: number[] = [];
    if (query.anonymousId !== undefined) {
      const device = query.anonymousId;
      // Only links no active split already cuts: a second split of the same device would
      // otherwise take effect twice, and reverting the first would change nothing.
      const cut = new Set(
        before.ignored.filter((i) => i.reason === 'severed_by_split').map((i) => i.messageId),
      );
      // Links up to the split's time (by event time; later links apply as usual).
      severedMessageIds = [
        ...facts.pairs.filter((l) => l.anonymousId === device),
        ...facts.aliases.filter((a) => a.previousId === device),
      ]
        .filter((l) => l.ts <= who.at && !cut.has(l.messageId))
        .map((l) => l.messageId);
    } else if (query.userId !== undefined) {
      const user = query.userId;
      const aliasTs = new Map(facts.aliases.map((a) => [a.messageId, a.ts]));
      severedMessageIds = before.merges
        .filter((m) => m.userIds.includes(user) && 'messageId' in m.by)
        .map((m) => (m.by as { messageId: string }).messageId)
        .filter((id) => (aliasTs.get(id) ?? Infinity) <= who.at);
      severedActionIds = before.merges
        .filter((m) => m.userIds.includes(user) && 'actionId' in m.by)
        .map((m) => (m.by as { actionId: number }).actionId);
    }
    if (severedMessageIds.length + severedActionIds.length === 0) {
      return {
        ok: false,
        status: 409,
        code: 'nothing_to_split',
        message: 'the id is not merged with anything',
      };
    }
    const target = query.userId !== undefined ? { userId: query.userId } : null;
    const actionId = this.identity.addAction(
      {
        kind: 'split',
        target: target ?? { anonymousId: query.anonymousId as string },
        until: who.at,
        severedMessageIds,
        severedActionIds,
      },
      who,
    );
    this.regraph(before);
    await this.flush(siteId);
    logger.info('identity.split', { site: siteId, action: actionId, by: who.by });
    return {
      ok: true,
      value: { actionId, severed: severedMessageIds.length + severedActionIds.length },
    };
  }

  /** Reverts an admin merge or split; answers which action it was and the ids it named. */
  async revert(
    siteId: string,
    actionId: number,
    who: AdminWho,
  ): Promise<
    AdminOutcome<{
      reverted: number;
      kind: AdminAction['kind'];
      ids: { userIds?: string[]; userId?: string; anonymousId?: string };
    }>
  > {
    this.rememberSite(siteId);
    const before = this.resolve();
    const action = this.identity.revertAction(actionId, who);
    if (!action) {
      return {
        ok: false,
        status: 404,
        code: 'action_not_found',
        message: 'no active admin action with that id',
      };
    }
    this.regraph(before);
    await this.flush(siteId);
    const ids = action.kind === 'merge' ? { userIds: action.userIds } : { ...action.target };
    return { ok: true, value: { reverted: actionId, kind: action.kind, ids } };
  }

  private resolve(): Resolution {
    this.resolution ??= resolveIdentity(this.identity.load());
    return this.resolution;
  }

  /**
   * Re-resolves the graph and marks every person whose events may have moved.
   * TODO(someday): both steps are linear in the site's users and links per changing batch
   * (milliseconds at the Puffy scale); a site with millions of users needs an incremental graph.
   */
  private regraph(before: Resolution): void {
    this.resolution = null;
    const after = this.resolve();
    for (const key of changedPeople(before, after, this.identity.load().users.keys())) {
      this.markDirty(key);
    }
  }

  /** Every person key that has at least one event. */
  private people(): Set<string> {
    const resolution = this.resolve();
    const people = new Set<string>();
    for (const userId of this.identity.load().users.keys())
      people.add(`u:${resolution.canonicalOf(userId)}`);
    const lone = this.sql.exec<{ anon: string }>(
      "SELECT DISTINCT dev AS anon FROM events WHERE dev <> '' AND user IS NULL",
    );
    for (const { anon } of lone) if (!resolution.deviceLinks.has(anon)) people.add(`a:${anon}`);
    return people;
  }

  private knownSite(): string | null {
    const row = this.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'site'")
      .toArray()[0];
    return row?.value ?? null;
  }

  private rememberSite(siteId: string): void {
    const known = this.knownSite();
    if (known && known !== siteId) {
      throw new Error(`SiteState for ${known} was called for site ${siteId}`);
    }
    if (!known) this.sql.exec("INSERT INTO meta (key, value) VALUES ('site', ?)", siteId);
  }

  private markDirty(key: string, durable = true): void {
    this.sequence += 1;
    this.dirty.set(key, this.sequence);
    if (!durable && !this.persisted.has(key)) return;
    this.persisted.add(key);
    this.sql.exec('INSERT OR REPLACE INTO dirty (key, seq) VALUES (?, ?)', key, this.sequence);
  }

  /**
   * Writes the progress of every dirty person to D1. One flush runs at a time: a caller that
   * arrives while one runs waits for it, and the loop keeps going until nothing is dirty, so
   * every write is computed from storage as it is at that moment and later writes land later.
   * This is what keeps awaited D1 I/O from interleaving stale progress over fresh (C33): an
   * event or a merge that lands during the await marks its people dirty again, and the loop
   * writes them once more from the new state.
   */
  private flush(siteId: string): Promise<void> {
    this.flushing ??= this.runFlush(siteId).finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async runFlush(siteId: string): Promise<void> {
    while (this.dirty.size > 0 || this.unmirrored.length > 0 || this.erasures.length > 0) {
      await this.mirror(siteId);
      if (this.dirty.size === 0) continue;
      const goals = await this.loadGoals(siteId);
      // The first 500 in marking order, without copying the whole map (it holds every person
      // of a burst: copying it per chunk made a large flush quadratic).
      const taken: Array<[string, number]> = [];
      for (const entry of this.dirty) {
        if (taken.length === FLUSH_CHUNK) break;
        taken.push(entry);
      }
      for (const [key] of taken) this.dirty.delete(key);
      try {
        // Inside the try: a throw here must put the chunk back as dirty too (most marks live in
        // memory only).
        const fold = await this.foldNow(siteId, Date.now());
        const resolution = this.resolve();
        const keys = taken.map(([key]) => key);
        const people = computePeople(this.sql, resolution, keys, goals);
        const written = await writeProgress(this.env.DB, siteId, goals, people, { fold });
        this.entriesSinceFold = written.folded ? 0 : (this.entriesSinceFold ?? 0) + written.logged;
        if (written.folded) this.folded();
      } catch (error) {
        for (const [key, seq] of taken) if (!this.dirty.has(key)) this.dirty.set(key, seq);
        logger.error('site_state.flush_failed', {
          site: siteId,
          people: taken.length,
          cause: error,
        });
        throw error;
      }
      for (const [key, seq] of taken) {
        if (!this.persisted.has(key)) continue;
        const done = this.sql.exec('DELETE FROM dirty WHERE key = ? AND seq = ?', key, seq);
        if (done.rowsWritten > 0) this.persisted.delete(key);
      }
    }
  }

  /**
   * Copies events taken since the last mirror (up to `MIRROR_CHUNK`) to D1's packs
   * (src/ingest/event-packs.ts), after the erasures of D1 copies owed, in one D1 batch: an
   * erasure then removes every copy written before it and none written after (a re-send taken
   * after the erasure). On failure both go back to wait for the next cycle.
   */
  private async mirror(siteId: string): Promise<void> {
    const erasures = this.erasures.splice(0);
    const taken = this.unmirrored.splice(0, MIRROR_CHUNK);
    const entries = taken.filter((e) => !this.erasing.has(unmirroredKey(e)));
    this.held.push(...taken.filter((e) => this.erasing.has(unmirroredKey(e))));
    if (erasures.length === 0 && entries.length === 0) return;
    const erase = erasures.map((e) => erasePersonEventsStatements(this.env.DB, siteId, e.person));
    try {
      // Read from storage in the order taken, up to `MIRROR_CHARS`: the rest goes back to the
      // front. An event erased since has no row and is skipped.
      const stored: Array<{ raw: string; at: number; ts: number }> = [];
      let chars = 0;
      let read = 0;
      for (const row of this.sql.exec<{ i: number; raw: string | null; at: number; ts: number }>(
        `SELECT j.key AS i, e.raw, j.value ->> 2 AS at, e.ts FROM json_each(?) j
         LEFT JOIN events e ON e.dev = j.value ->> 0 AND e.message_id = j.value ->> 1
         ORDER BY j.key`,
        JSON.stringify(entries.map((e) => [e.dev, e.messageId, e.at])),
      )) {
        if (chars > 0 && chars + (row.raw?.length ?? 0) > MIRROR_CHARS) break;
        read = row.i + 1;
        if (row.raw === null) continue;
        stored.push({ raw: row.raw, at: row.at, ts: row.ts });
        chars += row.raw.length;
      }
      this.unmirrored.unshift(...entries.splice(read));
      const results = await this.env.DB.batch<{ n?: number }>([
        ...erase.flat(),
        ...mirrorStatements(this.env.DB, siteId, stored),
      ]);
      let at = 0;
      for (const [i, erasure] of erasures.entries()) {
        erasure.done(results[at]?.results[0]?.n ?? 0);
        at += (erase[i] as D1PreparedStatement[]).length;
      }
    } catch (error) {
      // Back in front: the next cycle copies them (an event erased since is skipped then).
      this.erasures.unshift(...erasures);
      this.unmirrored.unshift(...entries);
      throw error;
    }
  }

  /**
   * Whether the write about to run folds the rollup log (`FOLD_EVERY_MS`, `FOLD_EVERY_ENTRIES`).
   * The first write since the last fold records when the next one is due; an instance's first
   * write reads how many entries the log holds (a read of the site's few log rows, where keeping
   * the count in storage would write a row per cycle).
   */
  private async foldNow(siteId: string, now: number): Promise<boolean> {
    if (this.foldDue === undefined) {
      const [due] = this.sql
        .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'fold_due'")
        .toArray();
      this.foldDue = due ? Number(due.value) : null;
    }
    if (this.entriesSinceFold === undefined) {
      const logged = await this.env.DB.prepare(
        'SELECT COALESCE(SUM(json_array_length(rows)), 0) AS n FROM rollup_log WHERE site_id = ?',
      )
        .bind(siteId)
        .first<{ n: number }>();
      this.entriesSinceFold = logged?.n ?? 0;
    }
    if (this.foldDue === null) {
      this.foldDue = now + FOLD_EVERY_MS;
      this.sql.exec(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('fold_due', ?)",
        String(this.foldDue),
      );
    }
    return now >= this.foldDue || this.entriesSinceFold >= FOLD_EVERY_ENTRIES;
  }

  /** After a fold: nothing is waiting for the next one. */
  private folded(): void {
    this.foldDue = null;
    this.sql.exec("DELETE FROM meta WHERE key = 'fold_due'");
  }

  private async loadGoals(siteId: string): Promise<StoredGoal[]> {
    const now = Date.now();
    if (!this.goals || this.goals.siteId !== siteId || now - this.goals.loadedAt > GOALS_TTL_MS) {
      this.goals = { siteId, loadedAt: now, list: await listLiveGoals(this.env.DB, siteId) };
    }
    return this.goals.list;
  }
}
