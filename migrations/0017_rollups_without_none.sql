-- A breakdown dim's rollup rows for "no value" (value '') are no longer kept: a report takes
-- them as the total's row less the dim's other values (src/funnel/rollups.ts, `factsCte`), so
-- folds stop writing them (docs/BENCHMARKS.md, session 9). The rows written before are dropped,
-- or a report would count them twice. Data only: the tables are unchanged, and so is the
-- drizzle snapshot (meta/0017 is 0016's, renumbered).
DELETE FROM `rollups` WHERE `dim` <> '' AND `value` = '';--> statement-breakpoint
DELETE FROM `rollup_durations` WHERE `dim` <> '' AND `value` = '';
