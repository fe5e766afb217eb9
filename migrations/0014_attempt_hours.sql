-- The attempts' index by entry time, packed (docs/BENCHMARKS.md, cost): `attempts_range` wrote
-- one billed row per new attempt; `attempt_hours` writes one per progress write, goal version and
-- hour of `t1`, listing the people whose attempts the write created. Readers by entry time join
-- those people back to `attempts` by primary key. Hand-edited: drizzle-kit does not model
-- WITHOUT ROWID, nor the listing of the attempts already stored (as a rebuild lists them, seq 0).
CREATE TABLE `attempt_hours` (
	`site_id` text NOT NULL,
	`goal_id` text NOT NULL,
	`version` integer NOT NULL,
	`hour` integer NOT NULL,
	`seq` integer NOT NULL,
	`persons` text NOT NULL,
	PRIMARY KEY(`site_id`, `goal_id`, `version`, `hour`, `seq`)
) WITHOUT ROWID;
--> statement-breakpoint
-- At most 2,000 people per row (D1 caps a value at 2 MB), as a rebuild lists them.
INSERT INTO `attempt_hours` (`site_id`, `goal_id`, `version`, `hour`, `seq`, `persons`)
	SELECT `site_id`, `goal_id`, `version`, `hour`, `n` / 2000, json_group_array(`person_id`)
	FROM (SELECT `site_id`, `goal_id`, `version`, `hour`, `person_id`, ROW_NUMBER() OVER (
			PARTITION BY `site_id`, `goal_id`, `version`, `hour` ORDER BY `person_id`) - 1 AS `n`
		FROM (SELECT DISTINCT `site_id`, `goal_id`, `version`, (`t1` / 3600000) * 3600000 AS `hour`,
			`person_id` FROM `attempts`))
	GROUP BY `site_id`, `goal_id`, `version`, `hour`, `n` / 2000;
--> statement-breakpoint
DROP INDEX `attempts_range`;
