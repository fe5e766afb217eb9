/**
 * The D1 schema. Raw events are the source of truth; `attempts` are derived progress rows that
 * the site's Durable Object rewrites and reports aggregate.
 */
import { sql } from 'drizzle-orm';
import {
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  uniqueIndex,
} from 'drizzle-orm/sqlite-core';

export const sites = sqliteTable('sites', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** How far back a public write key may date an event, in days. */
  backfillDays: integer('backfill_days').notNull().default(7),
  createdAt: integer('created_at').notNull(),
  /** Days raw events are kept before the cron purges them; null keeps them forever. */
  retentionDays: integer('retention_days'),
  /**
   * The newest cutoff a retention purge has deleted events before (epoch ms), or null: ingest
   * refuses older events even if the retention is later raised, since D1 no longer holds their
   * message ids to deduplicate a re-send.
   */
  purgedBefore: integer('purged_before'),
  /** JSON array of origins allowed to send browser beacons; null allows any origin. */
  allowedOrigins: text('allowed_origins'),
  /** 1: requests with `Sec-GPC: 1` or `DNT: 1` are kept only as a count, never stored. */
  honorPrivacySignals: integer('honor_privacy_signals').notNull().default(0),
  /** Requests per minute per write key; 0 turns the limit off. */
  ratePerKey: integer('rate_per_key').notNull().default(6000),
  /** Requests per minute per client address; 0 turns the limit off. */
  ratePerAddress: integer('rate_per_address').notNull().default(600),
});

export const writeKeys = sqliteTable('write_keys', {
  /** SHA-256 of the key, hex. The key itself is never stored. */
  keyHash: text('key_hash').primaryKey(),
  siteId: text('site_id').notNull(),
  createdAt: integer('created_at').notNull(),
  revokedAt: integer('revoked_at'),
  /** End of a rotation's grace period: the key stops working at this time. */
  expiresAt: integer('expires_at'),
  /** A short, non-secret prefix of the key so that admins can tell keys apart. */
  label: text('label'),
});

export const adminTokens = sqliteTable('admin_tokens', {
  tokenHash: text('token_hash').primaryKey(),
  name: text('name').notNull(),
  /** Null means every site. */
  siteId: text('site_id'),
  createdAt: integer('created_at').notNull(),
  revokedAt: integer('revoked_at'),
});

export const goals = sqliteTable(
  'goals',
  {
    siteId: text('site_id').notNull(),
    id: text('id').notNull(),
    currentVersion: integer('current_version').notNull(),
    /**
     * The newest version whose progress rows are complete; reports show it while a newer
     * version is rebuilt from stored events. Null until the first rebuild finishes.
     */
    readyVersion: integer('ready_version'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.id] })],
);

export const goalVersions = sqliteTable(
  'goal_versions',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    version: integer('version').notNull(),
    name: text('name').notNull(),
    /** The validated goal definition as JSON (steps, window, mode). */
    definition: text('definition').notNull(),
    note: text('note'),
    createdBy: text('created_by').notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.goalId, t.version] })],
);

export const shares = sqliteTable(
  'shares',
  {
    id: text('id').primaryKey(),
    tokenHash: text('token_hash').notNull(),
    siteId: text('site_id').notNull(),
    /** JSON array of goal ids the share may read; null means every goal of the site. */
    goalIds: text('goal_ids'),
    expiresAt: integer('expires_at'),
    revokedAt: integer('revoked_at'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [index('shares_token_hash').on(t.tokenHash)],
);

/**
 * One row per ingest request the site's Durable Object has not applied yet: the object deletes
 * it once the batch's people are written, so the table holds pending batches only and the
 * reconciler reads it whole, with no index (docs/BENCHMARKS.md, cost). WITHOUT ROWID in the
 * migration (0009): the primary key is the row, one billed row written instead of two.
 */
export const batches = sqliteTable('batches', {
  id: text('id').primaryKey(),
  siteId: text('site_id').notNull(),
  receivedAt: integer('received_at').notNull(),
  /** JSON array of the message ids of the batch's valid events. */
  messageIds: text('message_ids').notNull(),
  /** JSON array of its events as D1's packs hold them (src/ingest/event-packs.ts). */
  events: text('events'),
});

/**
 * D1's copy of the events, packed (src/ingest/event-packs.ts): one row per ingest request and
 * hour of event time, its valid events as a JSON array. A row per event (and a time index entry
 * per event) was most of the bill: every row written is billed. Readers take the first copy of
 * each event; the `events` view (migration 0016, not modelled here) reads them as the rows the
 * old table held. WITHOUT ROWID in the migration.
 */
export const eventPacks = sqliteTable(
  'event_packs',
  {
    siteId: text('site_id').notNull(),
    /** Start of the hour of event time, epoch milliseconds. */
    hour: integer('hour').notNull(),
    /** The request that brought the events. */
    batchId: text('batch_id').notNull(),
    receivedAt: integer('received_at').notNull(),
    /** JSON array of `[message_id, type, event, anonymous_id, user_id, previous_id, ts,
     * client_ts, properties, traits, context]` entries. */
    events: text('events').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.hour, t.batchId] })],
);

/**
 * Refused and filtered events. WITHOUT ROWID in the migration (0015), keyed by site, received
 * time and id: a row writes one billed row, and one more when it enters the partial message-id
 * index. Ids are allocated by src/ingest/refused-store.ts (no AUTOINCREMENT counter row).
 */
export const rejectedEvents = sqliteTable(
  'rejected_events',
  {
    /** Unique within the site and never reused; rows before 0015 keep AUTOINCREMENT's ids. */
    id: integer('id').notNull(),
    siteId: text('site_id').notNull(),
    /** When it was filed: for rows from 0015 on, the id / 1000. */
    receivedAt: integer('received_at').notNull(),
    code: text('code').notNull(),
    path: text('path'),
    message: text('message').notNull(),
    /** The raw event as received, capped at 8 KB. */
    raw: text('raw'),
    /** `rejected` (invalid input) or `filtered` (valid, but bot or opt-out traffic). */
    disposition: text('disposition').notNull().default('rejected'),
    /** What matched, for filtered traffic (the isbot pattern, the header). */
    rule: text('rule'),
    /** The event's own messageId when it had a usable one, to find it again. */
    messageId: text('message_id'),
    /** When an admin re-submitted it; the new outcome is in the re-submission's answer. */
    resubmittedAt: integer('resubmitted_at'),
  },
  (t) => [
    primaryKey({ columns: [t.siteId, t.receivedAt, t.id] }),
    // The retry dedupe and a person's refused events look rows up by message id; a row
    // without one (most refused events) stays out of the index.
    index('rejected_site_message')
      .on(t.siteId, t.messageId)
      .where(sql`${t.messageId} IS NOT NULL`),
  ],
);

/**
 * Per site, the highest refused-event id deleted while it was the site's newest (raised by the
 * purge and the erasure before they delete, read when an id is allocated): a deleted id is never
 * handed out again. WITHOUT ROWID in the migration (0015).
 */
export const rejectedFloor = sqliteTable('rejected_floor', {
  siteId: text('site_id').primaryKey(),
  id: integer('id').notNull(),
});

/** Every admin change: who (the token's name), when, what and on which site. */
export const adminAudit = sqliteTable(
  'admin_audit',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: integer('at').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    siteId: text('site_id'),
    /** JSON details; never a secret (keys and tokens appear as their label only). */
    detail: text('detail'),
  },
  (t) => [index('admin_audit_site').on(t.siteId, t.at)],
);

/**
 * One row per funnel attempt of a person on a goal version: the attempt starts at a step-1
 * event (`t1`) and records when each later step was reached. A report picks, per person, the
 * best attempt that starts in its range (docs/METRICS.md), so it is a GROUP BY over this table.
 * WITHOUT ROWID in the migration (0009): a new attempt writes one billed row, its row. One
 * person's rows are found through `goal_versions` and the primary key (`personAttemptsSql` in
 * src/funnel/rollups.ts); the rows of a range of entry times through `attempt_hours` (below),
 * which replaced the `attempts_range` index (migration 0014).
 */
export const attempts = sqliteTable(
  'attempts',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    version: integer('version').notNull(),
    personId: text('person_id').notNull(),
    t1: integer('t1').notNull(),
    reached: integer('reached').notNull(),
    t2: integer('t2'),
    t3: integer('t3'),
    t4: integer('t4'),
    t5: integer('t5'),
    t6: integer('t6'),
    t7: integer('t7'),
    t8: integer('t8'),
    t9: integer('t9'),
    t10: integer('t10'),
    utmSource: text('utm_source'),
    utmMedium: text('utm_medium'),
    utmCampaign: text('utm_campaign'),
    referrerDomain: text('referrer_domain'),
    device: text('device'),
    browser: text('browser'),
    os: text('os'),
    country: text('country'),
    /**
     * JSON array per step: `[value, orderKey, messageId]` of the goal's value property, or null.
     */
    stepValues: text('step_values'),
    /**
     * JSON of the entry event's properties (`property:<key>`) and the person's traits then
     * (`trait:<key>`), capped, for breakdowns by event property or person trait.
     */
    entryProps: text('entry_props'),
    // Facts for rollups (src/funnel/attempt-facts.ts), written with the row.
    /** Latest entry of an earlier attempt of the person that reached as far, or null. */
    prevGe: integer('prev_ge'),
    /** Earliest entry of a later attempt of the person that reached further, or null. */
    nextGt: integer('next_gt'),
    /** When the attempt stops being in progress; null once it reached the last step. */
    closeAt: integer('close_at'),
    /** Bit k: step k (0-based) still ahead of the attempt's furthest required step. */
    openMask: integer('open_mask').notNull().default(0),
    /** Bit k: as `open_mask`, with the required step before k reached. */
    progressMask: integer('progress_mask').notNull().default(0),
    /** Bit i: completed within the i-th completion-within bucket of the goal. */
    doneMask: integer('done_mask').notNull().default(0),
    /** JSON array: per step after the first, the log bucket of its time from the step before. */
    durationBuckets: text('duration_buckets'),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.goalId, t.version, t.personId, t.t1] })],
);

/**
 * The attempts' index by entry time, packed: one row per progress write, goal version and hour
 * of `t1`, listing the people for whom the write created an attempt key starting in that hour
 * (src/funnel/attempt-hours.ts). An index entry per attempt was a billed row written per new
 * attempt; this is one per write and hour. WITHOUT ROWID in the migration (0014).
 */
export const attemptHours = sqliteTable(
  'attempt_hours',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    version: integer('version').notNull(),
    /** Start of the hour of the attempts' `t1`, epoch milliseconds. */
    hour: integer('hour').notNull(),
    /** The write's log number (`rollup_log.seq`); 0, 1, … for a rebuild's rows of an hour. */
    seq: integer('seq').notNull(),
    /** JSON array of the person ids. */
    persons: text('persons').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.goalId, t.version, t.hour, t.seq] })],
);

const counters = (prefix: string, from: number, to: number) =>
  Object.fromEntries(
    Array.from({ length: to - from + 1 }, (_, i) => {
      const name = `${prefix}${from + i}`;
      return [name, integer(name).notNull().default(0)];
    }),
  );

/**
 * Counted-attempt rollups (docs/METRICS.md, "Rollups"): per goal version, entry hour, the hours
 * of `prev_ge` and `next_gt` (-1 and 1e9 for none), the hour the attempt stops being in progress
 * (-1 for never) and a breakdown (`dim` '' for the total, else a segment column with its value),
 * sums over the attempts that can be a counted attempt. Always equal to the aggregate of
 * `attempts`: maintained in the batch that rewrites the rows, rebuilt from them on a new version.
 * WITHOUT ROWID, like `rollup_durations` (migration 0010): a new key writes one billed row.
 */
export const rollups = sqliteTable(
  'rollups',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    version: integer('version').notNull(),
    dim: text('dim').notNull(),
    hour: integer('hour').notNull(),
    prevHour: integer('prev_hour').notNull(),
    nextHour: integer('next_hour').notNull(),
    openHour: integer('open_hour').notNull(),
    value: text('value').notNull(),
    /** Attempts. */
    n: integer('n').notNull().default(0),
    /** `c<k>`: reached step k; `o<k>`, `p<k>`: bits of open_mask, progress_mask. */
    ...counters('c', 1, 10),
    ...counters('o', 2, 10),
    ...counters('p', 2, 10),
    /** `d<k>`: sum of ms from the step before to step k; `w<i>`: bits of done_mask. */
    ...counters('d', 2, 10),
    ...counters('w', 0, 4),
    /** `v<k>`: sum of step k's value in millionths; `vn<k>`: attempts with a value there. */
    ...counters('v', 1, 10),
    ...counters('vn', 1, 10),
  },
  (t) => [
    primaryKey({
      columns: [
        t.siteId,
        t.goalId,
        t.version,
        t.dim,
        t.hour,
        t.prevHour,
        t.nextHour,
        t.openHour,
        t.value,
      ],
    }),
  ],
);

/** Time-between-steps histograms beside `rollups`: attempts per step and log bucket of ms. */
export const rollupDurations = sqliteTable(
  'rollup_durations',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    version: integer('version').notNull(),
    dim: text('dim').notNull(),
    hour: integer('hour').notNull(),
    prevHour: integer('prev_hour').notNull(),
    nextHour: integer('next_hour').notNull(),
    value: text('value').notNull(),
    step: integer('step').notNull(),
    bucket: integer('bucket').notNull(),
    n: integer('n').notNull().default(0),
  },
  (t) => [
    primaryKey({
      columns: [
        t.siteId,
        t.goalId,
        t.version,
        t.dim,
        t.hour,
        t.prevHour,
        t.nextHour,
        t.value,
        t.step,
        t.bucket,
      ],
    }),
  ],
);

/**
 * Rollup changes not yet folded into `rollups` and `rollup_durations`: one row per progress write,
 * holding the changed attempt rows (signed: -1 replaced, +1 written) as JSON, as far as the fold
 * reads them, rows that read alike summed into one entry (src/funnel/rollups.ts). A write appends
 * one row here instead of one per rollup key it moves; the site object folds the log into the
 * rollups about once an hour (or after about 2,000 entries logged), and a rollup report, a rebuild
 * and an erasure fold it first, in the same transaction, so what they read is always the aggregate
 * of `attempts` (docs/METRICS.md).
 * WITHOUT ROWID (migration 0012).
 */
export const rollupLog = sqliteTable(
  'rollup_log',
  {
    siteId: text('site_id').notNull(),
    seq: integer('seq').notNull(),
    rows: text('rows').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.seq] })],
);

/** Goal versions whose rollups were built from their attempts; reports trust only these. */
export const rollupVersions = sqliteTable(
  'rollup_versions',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    version: integer('version').notNull(),
    builtAt: integer('built_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.goalId, t.version] })],
);

/** Hourly event counts per event name, recorded by the cron for step-health checks. */
export const stepVolumes = sqliteTable(
  'step_volumes',
  {
    siteId: text('site_id').notNull(),
    event: text('event').notNull(),
    hour: integer('hour').notNull(),
    count: integer('count').notNull(),
    updatedAt: integer('updated_at').notNull(),
    /**
     * How far into the hour the count saw (epoch ms, at most the hour's end): a count is only
     * replaced by one that saw at least as much, so a run for a past time cannot shrink history.
     */
    countedTo: integer('counted_to').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.event, t.hour] })],
);

/** Which hours of a site's `step_volumes` have been counted, so history is backfilled once. */
export const volumeCoverage = sqliteTable('volume_coverage', {
  siteId: text('site_id').primaryKey(),
  fromHour: integer('from_hour').notNull(),
  toHour: integer('to_hour').notNull(),
});

/** Detector config per site (`goal_id` = '') and per goal: a partial AlertConfig as JSON. */
export const alertConfigs = sqliteTable(
  'alert_configs',
  {
    siteId: text('site_id').notNull(),
    goalId: text('goal_id').notNull(),
    config: text('config').notNull(),
    updatedBy: text('updated_by').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.goalId] })],
);

/** Where a site's alerts go: a signed webhook, a Slack incoming webhook or PagerDuty. */
export const alertChannels = sqliteTable(
  'alert_channels',
  {
    id: text('id').primaryKey(),
    siteId: text('site_id').notNull(),
    kind: text('kind').notNull(),
    name: text('name').notNull(),
    url: text('url').notNull(),
    /** HMAC secret of a webhook, routing key of PagerDuty; never returned after creation. */
    secret: text('secret'),
    minSeverity: text('min_severity').notNull().default('info'),
    createdAt: integer('created_at').notNull(),
    disabledAt: integer('disabled_at'),
  },
  (t) => [index('alert_channels_site').on(t.siteId)],
);

/** The current state of each alert key of a site (one row per key, reused across incidents). */
export const alertState = sqliteTable(
  'alert_state',
  {
    siteId: text('site_id').notNull(),
    key: text('key').notNull(),
    incidentId: text('incident_id').notNull(),
    status: text('status').notNull(),
    /** The kind the incident opened as; a resolve notice names it. */
    kind: text('kind').notNull(),
    /** The highest severity notified in the incident: its resolve reaches every channel told. */
    severity: text('severity').notNull(),
    /** The kind of the last notice, when it changed mid-incident (null: as opened). */
    lastKind: text('last_kind'),
    openedAt: integer('opened_at').notNull(),
    lastNotifiedAt: integer('last_notified_at').notNull(),
    lastMagnitude: real('last_magnitude').notNull(),
    /** The cron slot of the last action: an older, overlapping run may not act after it. */
    lastSlot: integer('last_slot').notNull(),
    /** Written with every action; the history row of that action is inserted only if it matches. */
    actionId: text('action_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.key] })],
);

/** Every open, repeat and resolve, with the numbers behind it. */
export const alertHistory = sqliteTable(
  'alert_history',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    siteId: text('site_id').notNull(),
    incidentId: text('incident_id').notNull(),
    key: text('key').notNull(),
    action: text('action').notNull(),
    reason: text('reason'),
    kind: text('kind').notNull(),
    severity: text('severity').notNull(),
    step: text('step'),
    /** JSON array of the goal ids whose steps the alert concerns. */
    goals: text('goals').notNull(),
    at: integer('at').notNull(),
    windowStart: integer('window_start').notNull(),
    windowEnd: integer('window_end').notNull(),
    observed: real('observed').notNull(),
    expected: real('expected').notNull(),
    detail: text('detail').notNull(),
  },
  (t) => [
    uniqueIndex('alert_history_once').on(t.incidentId, t.action, t.at),
    index('alert_history_site_time').on(t.siteId, t.at),
  ],
);

/** One delivery per history row and channel; the cron sends due rows with retries and backoff. */
export const alertOutbox = sqliteTable(
  'alert_outbox',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    siteId: text('site_id').notNull(),
    historyId: integer('history_id').notNull(),
    channelId: text('channel_id').notNull(),
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: integer('next_attempt_at').notNull(),
    leaseUntil: integer('lease_until'),
    createdAt: integer('created_at').notNull(),
    deliveredAt: integer('delivered_at'),
    lastError: text('last_error'),
  },
  (t) => [
    uniqueIndex('alert_outbox_once').on(t.historyId, t.channelId),
    index('alert_outbox_due').on(t.status, t.nextAttemptAt),
  ],
);

/** Every delivery attempt, successful or not. */
export const alertAttempts = sqliteTable(
  'alert_attempts',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    outboxId: integer('outbox_id').notNull(),
    at: integer('at').notNull(),
    ok: integer('ok').notNull(),
    statusCode: integer('status_code'),
    error: text('error'),
    durationMs: integer('duration_ms').notNull(),
  },
  (t) => [index('alert_attempts_outbox').on(t.outboxId)],
);

/** One row per site and cron slot: a cron that fires twice for a slot runs its checks once. */
export const alertRuns = sqliteTable(
  'alert_runs',
  {
    siteId: text('site_id').notNull(),
    slot: integer('slot').notNull(),
    startedAt: integer('started_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.siteId, t.slot] })],
);
