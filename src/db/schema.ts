/**
 * The D1 schema. Raw events are the source of truth; `attempts` are derived progress rows that
 * the site's Durable Object rewrites and reports aggregate.
 */
import { sql } from 'drizzle-orm';
import {
  index,
  integer,
  primaryKey,
  sqliteTable,
  text,
} from 'drizzle-orm/sqlite-core';

export const sites = sqliteTable('sites', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** How far back a public write key may date an event, in days. */
  backfillDays: integer('backfill_days').notNull().default(7),
  createdAt: integer('created_at').notNull(),
});

export const writeKeys = sqliteTable('write_keys', {
  /** SHA-256 of the key, hex. The key itself is never stored. */
  keyHash: text('key_hash').primaryKey(),
  siteId: text('site_id').notNull(),
  createdAt: integer('created_at').notNull(),
  revokedAt: integer('revoked_at'),
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

/** One row per accepted ingest request; `appliedAt` is set once the Durable Object has it. */
export const batches = sqliteTable(
  'batches',
  {
    id: text('id').primaryKey(),
    siteId: text('site_id').notNull(),
    receivedAt: integer('received_at').notNull(),
    /** JSON array of the message ids this batch stored for the first time. */
    messageIds: text('message_ids').notNull(),
    appliedAt: integer('applied_at'),
  },
  (t) => [index('batches_pending').on(t.receivedAt).where(sql`applied_at IS NULL`)],
);

export const events = sqliteTable(
  'events',
  {
    siteId: text('site_id').notNull(),
    messageId: text('message_id').notNull(),
    type: text('type').notNull(),
    event: text('event'),
    anonymousId: text('anonymous_id'),
    userId: text('user_id'),
    previousId: text('previous_id'),
    /** Event time in epoch milliseconds, after skew correction. */
    ts: integer('ts').notNull(),
    /** The client's own timestamp as sent, for audits of skew correction. */
    clientTs: text('client_ts'),
    receivedAt: integer('received_at').notNull(),
    properties: text('properties'),
    traits: text('traits'),
    context: text('context'),
    batchId: text('batch_id').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.siteId, t.messageId] }),
    index('events_site_ts').on(t.siteId, t.ts),
    // The ingest alias guardrail looks users up by id.
    index('events_site_user').on(t.siteId, t.userId),
    index('events_site_anonymous').on(t.siteId, t.anonymousId),
  ],
);

export const rejectedEvents = sqliteTable(
  'rejected_events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    siteId: text('site_id'),
    receivedAt: integer('received_at').notNull(),
    code: text('code').notNull(),
    path: text('path'),
    message: text('message').notNull(),
    /** The raw event as received, capped at 8 KB. */
    raw: text('raw'),
  },
  (t) => [index('rejected_site_time').on(t.siteId, t.receivedAt)],
);

/**
 * One row per funnel attempt of a person on a goal version: the attempt starts at a step-1
 * event (`t1`) and records when each later step was reached. A report picks, per person, the
 * best attempt that starts in its range (docs/METRICS.md), so it is a GROUP BY over this table.
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
  },
  (t) => [
    primaryKey({ columns: [t.siteId, t.goalId, t.version, t.personId, t.t1] }),
    index('attempts_range').on(t.siteId, t.goalId, t.version, t.t1),
    index('attempts_person').on(t.siteId, t.personId),
  ],
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
  },
  (t) => [primaryKey({ columns: [t.siteId, t.event, t.hour] })],
);
