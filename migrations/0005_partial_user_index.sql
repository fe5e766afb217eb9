DROP INDEX `events_site_user`;--> statement-breakpoint
CREATE INDEX `events_site_user` ON `events` (`site_id`,`user_id`) WHERE "events"."user_id" IS NOT NULL;