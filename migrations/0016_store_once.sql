-- Each event stored once in D1, packed (docs/BENCHMARKS.md, cost): `events` wrote a billed row
-- per event and `event_hours` one per request and hour. The site object keeps each event once
-- and its write cycle copies what it took to `event_packs`, as JSON arrays, one row per cycle
-- and hour of event time (src/ingest/event-packs.ts). The stored events carry over, one pack
-- per former request and hour (split under 2 MB); a pending batch record now holds its events
-- (`batches.events`); the records waiting here keep NULL, and the reconciler reads their
-- events from the packs carried over. `events` becomes a view with the old columns, reading
-- the first copy of each event (device and message id, as the site object keys them).
-- Hand-written: drizzle-kit does not model WITHOUT ROWID or views; its snapshot (meta/0016)
-- matches the table below.
CREATE TABLE `event_packs` (
	`site_id` text NOT NULL,
	`hour` integer NOT NULL,
	`batch_id` text NOT NULL,
	`received_at` integer NOT NULL,
	`events` text NOT NULL,
	PRIMARY KEY(`site_id`, `hour`, `batch_id`)
) WITHOUT ROWID;
--> statement-breakpoint
INSERT INTO `event_packs` (`site_id`, `hour`, `batch_id`, `received_at`, `events`)
	SELECT `site_id`, `hour`,
		CASE WHEN `part` = 0 THEN `batch_id` ELSE `batch_id` || '.' || `part` END,
		MIN(`received_at`), json_group_array(json(`entry`))
	FROM (
		SELECT `site_id`, `hour`, `batch_id`, `received_at`, `entry`,
			-- Packs of at most 600,000 characters (under D1's 2 MB value in any script), as the
			-- site object writes them (src/ingest/event-packs.ts, PACK_CHARS).
			(SUM(length(`entry`)) OVER (PARTITION BY `site_id`, `hour`, `batch_id`
				ORDER BY `message_id` ROWS UNBOUNDED PRECEDING) - length(`entry`)) / 600000 AS `part`
		FROM (
			SELECT `site_id`, (`ts` / 3600000) * 3600000 AS `hour`, `batch_id`, `received_at`,
				`message_id`, json_array(`message_id`, `type`, `event`, `anonymous_id`, `user_id`,
					`previous_id`, `ts`, `client_ts`, json(`properties`), json(`traits`),
					json(`context`)) AS `entry`
			FROM `events`))
	GROUP BY `site_id`, `hour`, `batch_id`, `part`;
--> statement-breakpoint
ALTER TABLE `batches` ADD `events` text;
--> statement-breakpoint
DROP TABLE `event_hours`;
--> statement-breakpoint
DROP TABLE `events`;
--> statement-breakpoint
CREATE VIEW `events` AS
	SELECT MIN(h.received_at) AS received_at, h.site_id AS site_id, j.value ->> 0 AS message_id,
		j.value ->> 1 AS type, j.value ->> 2 AS event, j.value ->> 3 AS anonymous_id,
		j.value ->> 4 AS user_id, j.value ->> 5 AS previous_id, j.value ->> 6 AS ts,
		j.value ->> 7 AS client_ts, j.value ->> 8 AS properties, j.value ->> 9 AS traits,
		j.value ->> 10 AS context, h.batch_id AS batch_id
	FROM `event_packs` h CROSS JOIN json_each(h.events) j
	GROUP BY h.site_id, j.value ->> 0,
		CASE WHEN j.value ->> 1 = 'alias' THEN '' ELSE COALESCE(j.value ->> 3, '') END;
