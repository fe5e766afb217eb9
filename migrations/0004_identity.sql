CREATE INDEX `events_site_user` ON `events` (`site_id`,`user_id`);--> statement-breakpoint
CREATE INDEX `events_site_anonymous` ON `events` (`site_id`,`anonymous_id`);