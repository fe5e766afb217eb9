-- Lean rollups (docs/BENCHMARKS.md, cost): both rollup tables rebuilt WITHOUT ROWID, so a new
-- rollup row writes one billed row instead of two (the row and its primary-key index entry).
-- Hand-written: drizzle-kit does not model WITHOUT ROWID; columns and keys are unchanged.
CREATE TABLE `rollups_lean` (
	`site_id` text NOT NULL,
	`goal_id` text NOT NULL,
	`version` integer NOT NULL,
	`dim` text NOT NULL,
	`hour` integer NOT NULL,
	`prev_hour` integer NOT NULL,
	`next_hour` integer NOT NULL,
	`open_hour` integer NOT NULL,
	`value` text NOT NULL,
	`n` integer DEFAULT 0 NOT NULL,
	`c1` integer DEFAULT 0 NOT NULL,
	`c2` integer DEFAULT 0 NOT NULL,
	`c3` integer DEFAULT 0 NOT NULL,
	`c4` integer DEFAULT 0 NOT NULL,
	`c5` integer DEFAULT 0 NOT NULL,
	`c6` integer DEFAULT 0 NOT NULL,
	`c7` integer DEFAULT 0 NOT NULL,
	`c8` integer DEFAULT 0 NOT NULL,
	`c9` integer DEFAULT 0 NOT NULL,
	`c10` integer DEFAULT 0 NOT NULL,
	`o2` integer DEFAULT 0 NOT NULL,
	`o3` integer DEFAULT 0 NOT NULL,
	`o4` integer DEFAULT 0 NOT NULL,
	`o5` integer DEFAULT 0 NOT NULL,
	`o6` integer DEFAULT 0 NOT NULL,
	`o7` integer DEFAULT 0 NOT NULL,
	`o8` integer DEFAULT 0 NOT NULL,
	`o9` integer DEFAULT 0 NOT NULL,
	`o10` integer DEFAULT 0 NOT NULL,
	`p2` integer DEFAULT 0 NOT NULL,
	`p3` integer DEFAULT 0 NOT NULL,
	`p4` integer DEFAULT 0 NOT NULL,
	`p5` integer DEFAULT 0 NOT NULL,
	`p6` integer DEFAULT 0 NOT NULL,
	`p7` integer DEFAULT 0 NOT NULL,
	`p8` integer DEFAULT 0 NOT NULL,
	`p9` integer DEFAULT 0 NOT NULL,
	`p10` integer DEFAULT 0 NOT NULL,
	`d2` integer DEFAULT 0 NOT NULL,
	`d3` integer DEFAULT 0 NOT NULL,
	`d4` integer DEFAULT 0 NOT NULL,
	`d5` integer DEFAULT 0 NOT NULL,
	`d6` integer DEFAULT 0 NOT NULL,
	`d7` integer DEFAULT 0 NOT NULL,
	`d8` integer DEFAULT 0 NOT NULL,
	`d9` integer DEFAULT 0 NOT NULL,
	`d10` integer DEFAULT 0 NOT NULL,
	`w0` integer DEFAULT 0 NOT NULL,
	`w1` integer DEFAULT 0 NOT NULL,
	`w2` integer DEFAULT 0 NOT NULL,
	`w3` integer DEFAULT 0 NOT NULL,
	`w4` integer DEFAULT 0 NOT NULL,
	`v1` integer DEFAULT 0 NOT NULL,
	`v2` integer DEFAULT 0 NOT NULL,
	`v3` integer DEFAULT 0 NOT NULL,
	`v4` integer DEFAULT 0 NOT NULL,
	`v5` integer DEFAULT 0 NOT NULL,
	`v6` integer DEFAULT 0 NOT NULL,
	`v7` integer DEFAULT 0 NOT NULL,
	`v8` integer DEFAULT 0 NOT NULL,
	`v9` integer DEFAULT 0 NOT NULL,
	`v10` integer DEFAULT 0 NOT NULL,
	`vn1` integer DEFAULT 0 NOT NULL,
	`vn2` integer DEFAULT 0 NOT NULL,
	`vn3` integer DEFAULT 0 NOT NULL,
	`vn4` integer DEFAULT 0 NOT NULL,
	`vn5` integer DEFAULT 0 NOT NULL,
	`vn6` integer DEFAULT 0 NOT NULL,
	`vn7` integer DEFAULT 0 NOT NULL,
	`vn8` integer DEFAULT 0 NOT NULL,
	`vn9` integer DEFAULT 0 NOT NULL,
	`vn10` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `goal_id`, `version`, `dim`, `hour`, `prev_hour`, `next_hour`, `open_hour`, `value`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `rollups_lean` (`site_id`, `goal_id`, `version`, `dim`, `hour`, `prev_hour`, `next_hour`, `open_hour`, `value`, `n`, `c1`, `c2`, `c3`, `c4`, `c5`, `c6`, `c7`, `c8`, `c9`, `c10`, `o2`, `o3`, `o4`, `o5`, `o6`, `o7`, `o8`, `o9`, `o10`, `p2`, `p3`, `p4`, `p5`, `p6`, `p7`, `p8`, `p9`, `p10`, `d2`, `d3`, `d4`, `d5`, `d6`, `d7`, `d8`, `d9`, `d10`, `w0`, `w1`, `w2`, `w3`, `w4`, `v1`, `v2`, `v3`, `v4`, `v5`, `v6`, `v7`, `v8`, `v9`, `v10`, `vn1`, `vn2`, `vn3`, `vn4`, `vn5`, `vn6`, `vn7`, `vn8`, `vn9`, `vn10`)
	SELECT `site_id`, `goal_id`, `version`, `dim`, `hour`, `prev_hour`, `next_hour`, `open_hour`, `value`, `n`, `c1`, `c2`, `c3`, `c4`, `c5`, `c6`, `c7`, `c8`, `c9`, `c10`, `o2`, `o3`, `o4`, `o5`, `o6`, `o7`, `o8`, `o9`, `o10`, `p2`, `p3`, `p4`, `p5`, `p6`, `p7`, `p8`, `p9`, `p10`, `d2`, `d3`, `d4`, `d5`, `d6`, `d7`, `d8`, `d9`, `d10`, `w0`, `w1`, `w2`, `w3`, `w4`, `v1`, `v2`, `v3`, `v4`, `v5`, `v6`, `v7`, `v8`, `v9`, `v10`, `vn1`, `vn2`, `vn3`, `vn4`, `vn5`, `vn6`, `vn7`, `vn8`, `vn9`, `vn10` FROM `rollups`;
--> statement-breakpoint
DROP TABLE `rollups`;
--> statement-breakpoint
ALTER TABLE `rollups_lean` RENAME TO `rollups`;
--> statement-breakpoint
CREATE TABLE `rollup_durations_lean` (
	`site_id` text NOT NULL,
	`goal_id` text NOT NULL,
	`version` integer NOT NULL,
	`dim` text NOT NULL,
	`hour` integer NOT NULL,
	`prev_hour` integer NOT NULL,
	`next_hour` integer NOT NULL,
	`value` text NOT NULL,
	`step` integer NOT NULL,
	`bucket` integer NOT NULL,
	`n` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`site_id`, `goal_id`, `version`, `dim`, `hour`, `prev_hour`, `next_hour`, `value`, `step`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `rollup_durations_lean` (`site_id`, `goal_id`, `version`, `dim`, `hour`, `prev_hour`, `next_hour`, `value`, `step`, `bucket`, `n`)
	SELECT `site_id`, `goal_id`, `version`, `dim`, `hour`, `prev_hour`, `next_hour`, `value`, `step`, `bucket`, `n` FROM `rollup_durations`;
--> statement-breakpoint
DROP TABLE `rollup_durations`;
--> statement-breakpoint
ALTER TABLE `rollup_durations_lean` RENAME TO `rollup_durations`;
