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
INSERT INTO `attempt_hours` (`site_id`, `goal_id`, `version`, `hour`, `seq`, `persons`)
	SELECT `site_id`, `goal_id`, `version`, (`t1` / 3600000) * 3600000, 0,
		json_group_array(DISTINCT `person_id`)
	FROM `attempts` GROUP BY 1, 2, 3, 4;
--> statement-breakpoint
DROP INDEX `attempts_range`;
