ALTER TABLE `step_volumes` ADD `counted_to` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Rows written before this column counted the events before their updated_at.
UPDATE `step_volumes` SET `counted_to` = MIN(`hour` + 3600000, `updated_at`);
