ALTER TABLE `attempts` ADD `step_values` text;--> statement-breakpoint
ALTER TABLE `attempts` ADD `entry_props` text;--> statement-breakpoint
ALTER TABLE `goals` ADD `ready_version` integer;--> statement-breakpoint
-- Goals saved before versions tracked readiness had their progress built already.
UPDATE `goals` SET `ready_version` = `current_version`;
