-- Lean refused and filtered events (docs/BENCHMARKS.md, cost): a refused event wrote 4 billed
-- rows (its rowid row, two index entries and AUTOINCREMENT's `sqlite_sequence` row). Rebuilt
-- WITHOUT ROWID, keyed by (site, received time, id), which serves the time-ordered reads, with
-- the message-id index partial: 1 row, or 2 with a message id. Ids are allocated by the insert
-- (src/ingest/refused-store.ts), above the site's newest and its `rejected_floor` (raised by
-- whatever deletes the newest row); rows carry over with their AUTOINCREMENT ids, below 2^40.
-- Hand-written: drizzle-kit does not model WITHOUT ROWID; its snapshot (meta/0015) matches the
-- columns and indexes below.
CREATE TABLE `rejected_events_lean` (
	`id` integer NOT NULL,
	`site_id` text NOT NULL,
	`received_at` integer NOT NULL,
	`code` text NOT NULL,
	`path` text,
	`message` text NOT NULL,
	`raw` text,
	`disposition` text DEFAULT 'rejected' NOT NULL,
	`rule` text,
	`message_id` text,
	`resubmitted_at` integer,
	PRIMARY KEY(`site_id`, `received_at`, `id`)
) WITHOUT ROWID;--> statement-breakpoint
-- No writer ever filed a row without a site; should one exist, it stays (under '') as unread
-- as before.
INSERT INTO `rejected_events_lean` SELECT `id`, COALESCE(`site_id`, ''), `received_at`, `code`,
	`path`, `message`, `raw`, `disposition`, `rule`, `message_id`, `resubmitted_at`
	FROM `rejected_events`;--> statement-breakpoint
DROP TABLE `rejected_events`;--> statement-breakpoint
ALTER TABLE `rejected_events_lean` RENAME TO `rejected_events`;--> statement-breakpoint
CREATE INDEX `rejected_site_message` ON `rejected_events` (`site_id`,`message_id`)
	WHERE "rejected_events"."message_id" IS NOT NULL;--> statement-breakpoint
CREATE TABLE `rejected_floor` (
	`site_id` text PRIMARY KEY NOT NULL,
	`id` integer NOT NULL
) WITHOUT ROWID;
