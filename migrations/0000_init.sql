CREATE TABLE `admin_tokens` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`site_id` text,
	`created_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE TABLE `attempts` (
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
	PRIMARY KEY(`site_id`, `goal_id`, `version`, `person_id`, `t1`)
);
--> statement-breakpoint
CREATE INDEX `attempts_range` ON `attempts` (`site_id`,`goal_id`,`version`,`t1`);--> statement-breakpoint
CREATE INDEX `attempts_person` ON `attempts` (`site_id`,`person_id`);--> statement-breakpoint
CREATE TABLE `batches` (
	`id` text PRIMARY KEY NOT NULL,
	`site_id` text NOT NULL,
	`received_at` integer NOT NULL,
	`message_ids` text NOT NULL,
	`applied_at` integer
);
--> statement-breakpoint
CREATE INDEX `batches_pending` ON `batches` (`received_at`) WHERE applied_at IS NULL;--> statement-breakpoint
CREATE TABLE `events` (
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
);
--> statement-breakpoint
CREATE INDEX `events_site_ts` ON `events` (`site_id`,`ts`);--> statement-breakpoint
CREATE TABLE `goal_versions` (
	`site_id` text NOT NULL,
	`goal_id` text NOT NULL,
	`version` integer NOT NULL,
	`name` text NOT NULL,
	`definition` text NOT NULL,
	`note` text,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`site_id`, `goal_id`, `version`)
);
--> statement-breakpoint
CREATE TABLE `goals` (
	`site_id` text NOT NULL,
	`id` text NOT NULL,
	`current_version` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`site_id`, `id`)
);
--> statement-breakpoint
CREATE TABLE `rejected_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` text,
	`received_at` integer NOT NULL,
	`code` text NOT NULL,
	`path` text,
	`message` text NOT NULL,
	`raw` text
);
--> statement-breakpoint
CREATE INDEX `rejected_site_time` ON `rejected_events` (`site_id`,`received_at`);--> statement-breakpoint
CREATE TABLE `shares` (
	`id` text PRIMARY KEY NOT NULL,
	`token_hash` text NOT NULL,
	`site_id` text NOT NULL,
	`goal_ids` text,
	`expires_at` integer,
	`revoked_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `shares_token_hash` ON `shares` (`token_hash`);--> statement-breakpoint
CREATE TABLE `sites` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`backfill_days` integer DEFAULT 7 NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `step_volumes` (
	`site_id` text NOT NULL,
	`event` text NOT NULL,
	`hour` integer NOT NULL,
	`count` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`site_id`, `event`, `hour`)
);
--> statement-breakpoint
CREATE TABLE `write_keys` (
	`key_hash` text PRIMARY KEY NOT NULL,
	`site_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer
);
