-- A breakdown dim's rollup rows for "no value" (value '') are no longer written (src/funnel/
-- rollups.ts, `factsCte`): a report takes that group as the total's sums less the dim's other
-- values (src/report/rollup-report.ts), and reads no '' rows of a breakdown dim. The rows
-- written before are dropped so the rollups stay equal to a rebuild from the rows. Idempotent:
-- run it again after the deploy (README, Deploying), for the rows the old Worker's folds wrote
-- in between. Data only: the tables and the drizzle snapshot (meta/0017 is 0016's) unchanged.
DELETE FROM `rollups` WHERE `dim` <> '' AND `value` = '';--> statement-breakpoint
DELETE FROM `rollup_durations` WHERE `dim` <> '' AND `value` = '';
