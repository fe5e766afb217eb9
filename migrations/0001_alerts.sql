CREATE TABLE `alert_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`outbox_id` integer NOT NULL,
	`at` integer NOT NULL,
	`ok` integer NOT NULL,
	`status_code` integer,
	`error` text,
	`duration_ms` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `alert_attempts_outbox` ON `alert_attempts` (`outbox_id`);--> statement-breakpoint
CREATE TABLE `alert_channels` (
	`id` text PRIMARY KEY NOT NULL,
	`site_id` text NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`url` text NOT NULL,
	`secret` text,
	`min_severity` text DEFAULT 'info' NOT NULL,
	`created_at` integer NOT NULL,
	`disabled_at` integer
);
--> statement-breakpoint
CREATE INDEX `alert_channels_site` ON `alert_channels` (`site_id`);--> statement-breakpoint
CREATE TABLE `alert_configs` (
	`site_id` text NOT NULL,
	`goal_id` text NOT NULL,
	`config` text NOT NULL,
	`updated_by` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`site_id`, `goal_id`)
);
--> statement-breakpoint
CREATE TABLE `alert_history` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` text NOT NULL,
	`incident_id` text NOT NULL,
	`key` text NOT NULL,
	`action` text NOT NULL,
	`reason` text,
	`kind` text NOT NULL,
	`severity` text NOT NULL,
	`step` text,
	`goals` text NOT NULL,
	`at` integer NOT NULL,
	`window_start` integer NOT NULL,
	`window_end` integer NOT NULL,
	`observed` real NOT NULL,
	`expected` real NOT NULL,
	`detail` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `alert_history_once` ON `alert_history` (`incident_id`,`action`,`at`);--> statement-breakpoint
CREATE INDEX `alert_history_site_time` ON `alert_history` (`site_id`,`at`);--> statement-breakpoint
CREATE TABLE `alert_outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`site_id` text NOT NULL,
	`history_id` integer NOT NULL,
	`channel_id` text NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`lease_until` integer,
	`created_at` integer NOT NULL,
	`delivered_at` integer,
	`last_error` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `alert_outbox_once` ON `alert_outbox` (`history_id`,`channel_id`);--> statement-breakpoint
CREATE INDEX `alert_outbox_due` ON `alert_outbox` (`status`,`next_attempt_at`);--> statement-breakpoint
CREATE TABLE `alert_runs` (
	`site_id` text NOT NULL,
	`slot` integer NOT NULL,
	`started_at` integer NOT NULL,
	PRIMARY KEY(`site_id`, `slot`)
);
--> statement-breakpoint
CREATE TABLE `alert_state` (
	`site_id` text NOT NULL,
	`key` text NOT NULL,
	`incident_id` text NOT NULL,
	`status` text NOT NULL,
	`kind` text NOT NULL,
	`severity` text NOT NULL,
	`opened_at` integer NOT NULL,
	`last_notified_at` integer NOT NULL,
	`last_magnitude` real NOT NULL,
	`last_slot` integer NOT NULL,
	`action_id` text NOT NULL,
	PRIMARY KEY(`site_id`, `key`)
);
--> statement-breakpoint
CREATE TABLE `volume_coverage` (
	`site_id` text PRIMARY KEY NOT NULL,
	`from_hour` integer NOT NULL,
	`to_hour` integer NOT NULL
);
