CREATE TABLE `admin_audit` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`site_id` text,
	`detail` text
);
--> statement-breakpoint
CREATE INDEX `admin_audit_site` ON `admin_audit` (`site_id`,`at`);--> statement-breakpoint
ALTER TABLE `rejected_events` ADD `disposition` text DEFAULT 'rejected' NOT NULL;--> statement-breakpoint
ALTER TABLE `rejected_events` ADD `rule` text;--> statement-breakpoint
ALTER TABLE `rejected_events` ADD `message_id` text;--> statement-breakpoint
ALTER TABLE `rejected_events` ADD `resubmitted_at` integer;--> statement-breakpoint
CREATE INDEX `rejected_site_message` ON `rejected_events` (`site_id`,`message_id`);--> statement-breakpoint
ALTER TABLE `sites` ADD `retention_days` integer;--> statement-breakpoint
ALTER TABLE `sites` ADD `allowed_origins` text;--> statement-breakpoint
ALTER TABLE `sites` ADD `honor_privacy_signals` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `sites` ADD `rate_per_key` integer DEFAULT 6000 NOT NULL;--> statement-breakpoint
ALTER TABLE `sites` ADD `rate_per_address` integer DEFAULT 600 NOT NULL;--> statement-breakpoint
ALTER TABLE `write_keys` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `write_keys` ADD `label` text;