-- Rollup changes waiting to be folded into `rollups` and `rollup_durations`
-- (src/funnel/rollups.ts): a progress write appends one row instead of one per rollup key it
-- moves. Hand-written: drizzle-kit does not model WITHOUT ROWID; its snapshot (meta/0012)
-- matches the columns.
CREATE TABLE `rollup_log` (
	`site_id` text NOT NULL,
	`seq` integer NOT NULL,
	`rows` text NOT NULL,
	PRIMARY KEY(`site_id`, `seq`)
) WITHOUT ROWID;