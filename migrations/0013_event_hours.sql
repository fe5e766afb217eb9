-- The events' time index, packed (docs/BENCHMARKS.md, cost): `events_site_ts` wrote one billed
-- row per event; `event_hours` writes one per request and hour of event time, listing the message
-- ids the request stored first. Readers by time join those ids back to `events` by primary key.
-- Hand-edited: drizzle-kit does not model WITHOUT ROWID, nor the carry-over of stored events.
CREATE TABLE `event_hours` (
	`site_id` text NOT NULL,
	`hour` integer NOT NULL,
	`batch_id` text NOT NULL,
	`ids` text NOT NULL,
	PRIMARY KEY(`site_id`, `hour`, `batch_id`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `event_hours` (`site_id`, `hour`, `batch_id`, `ids`)
	SELECT `site_id`, (`ts` / 3600000) * 3600000, `batch_id`, json_group_array(`message_id`)
	FROM `events` GROUP BY 1, 2, 3;
--> statement-breakpoint
DROP INDEX `events_site_ts`;
