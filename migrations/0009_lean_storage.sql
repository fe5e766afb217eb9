-- Lean storage (docs/BENCHMARKS.md, cost): every index entry is a billed row written. The three
-- tables written per event are rebuilt WITHOUT ROWID (the primary key is the row, so a row no
-- longer writes a second entry for its key), and indexes the hot path does not need go.
-- Hand-written: drizzle-kit does not model WITHOUT ROWID; its snapshot (meta/0009) matches the
-- columns and indexes below.
CREATE TABLE `events_lean` (
	`site_id` text NOT NULL,
	`message_id` text NOT NULL,
	`type` text NOT NULL,
	`event` text,
	`anonymous_id` text,
	`user_id` text,
	`previous_id` text,
	`ts` integer NOT NULL,
	`client_ts` text,
	`received_at` integer NOT NULL,
	`properties` text,
	`traits` text,
	`context` text,
	`batch_id` text NOT NULL,
	PRIMARY KEY(`site_id`, `message_id`)
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `events_lean` SELECT `site_id`, `message_id`, `type`, `event`, `anonymous_id`,
	`user_id`, `previous_id`, `ts`, `client_ts`, `received_at`, `properties`, `traits`, `context`,
	`batch_id` FROM `events`;--> statement-breakpoint
DROP TABLE `events`;--> statement-breakpoint
ALTER TABLE `events_lean` RENAME TO `events`;--> statement-breakpoint
CREATE INDEX `events_site_ts` ON `events` (`site_id`,`ts`);--> statement-breakpoint
CREATE INDEX `events_site_user` ON `events` (`site_id`,`user_id`) WHERE "events"."user_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX `events_site_device` ON `events` (`site_id`,`anonymous_id`) WHERE "events"."user_id" IS NOT NULL;--> statement-breakpoint
-- Batches now live only until their site object applies them (it deletes the row): applied
-- ones are not carried over, and the pending index goes with `applied_at`.
CREATE TABLE `batches_lean` (
	`id` text PRIMARY KEY NOT NULL,
	`site_id` text NOT NULL,
	`received_at` integer NOT NULL,
	`message_ids` text NOT NULL
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `batches_lean` SELECT `id`, `site_id`, `received_at`, `message_ids` FROM `batches`
	WHERE `applied_at` IS NULL;--> statement-breakpoint
DROP TABLE `batches`;--> statement-breakpoint
ALTER TABLE `batches_lean` RENAME TO `batches`;--> statement-breakpoint
CREATE TABLE `attempts_lean` (
	`site_id` text NOT NULL,
	`goal_id` text NOT NULL,
	`version` integer NOT NULL,
	`person_id` text NOT NULL,
	`t1` integer NOT NULL,
	`reached` integer NOT NULL,
	`t2` integer,
	`t3` integer,
	`t4` integer,
	`t5` integer,
	`t6` integer,
	`t7` integer,
	`t8` integer,
	`t9` integer,
	`t10` integer,
	`utm_source` text,
	`utm_medium` text,
	`utm_campaign` text,
	`referrer_domain` text,
	`device` text,
	`browser` text,
	`os` text,
	`country` text,
	`step_values` text,
	`entry_props` text,
	`prev_ge` integer,
	`next_gt` integer,
	`close_at` integer,
	`open_mask` integer DEFAULT 0 NOT NULL,
	`progress_mask` integer DEFAULT 0 NOT NULL,
	`done_mask` integer DEFAULT 0 NOT NULL,
	`duration_buckets` text,
	PRIMARY KEY(`site_id`, `goal_id`, `version`, `person_id`, `t1`)
) WITHOUT ROWID;--> statement-breakpoint
INSERT INTO `attempts_lean` SELECT `site_id`, `goal_id`, `version`, `person_id`, `t1`, `reached`,
	`t2`, `t3`, `t4`, `t5`, `t6`, `t7`, `t8`, `t9`, `t10`, `utm_source`, `utm_medium`,
	`utm_campaign`, `referrer_domain`, `device`, `browser`, `os`, `country`, `step_values`,
	`entry_props`, `prev_ge`, `next_gt`, `close_at`, `open_mask`, `progress_mask`, `done_mask`,
	`duration_buckets` FROM `attempts`;--> statement-breakpoint
DROP TABLE `attempts`;--> statement-breakpoint
ALTER TABLE `attempts_lean` RENAME TO `attempts`;--> statement-breakpoint
CREATE INDEX `attempts_range` ON `attempts` (`site_id`,`goal_id`,`version`,`t1`);
