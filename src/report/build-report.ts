/** Assembles a funnel report for one goal version and range from counted attempts. */
import type { Goal, Mode } from '../funnel/definition';
import { describeGoal, type GlossaryEntry } from './glossary';
import type { CountedAttempt, FunnelSummary } from './metrics';
import { summarize } from './metrics';
import { formatRange, isoInstant, type ReportRange } from './range';
import type { AggregatedFunnel } from './rollup-report';
import { breakdown, overTime, type BreakdownGroup, type Interval } from './slices';

/**
 * A restriction to people whose segment at entry has a value (`filter=<key>:<value>`), or has
 * none (`value: null`, written `filter=<key>`).
 */
export interface SegmentFilter {
  key: string;
  value: string | null;
}

/** A filter as the URL writes it: `<key>:<value>`, or the key alone for no value. */
export const filterParam = (f: SegmentFilter) => (f.value === null ? f.key : `${f.key}:${f.value}`);

export interface ReportView {
  mode: Mode;
  window: string;
  breakdown: string | null;
  top: number;
  interval: Interval;
  /** Sorted by key, then value; values of one key are alternatives, keys must all hold. */
  filters: SegmentFilter[];
}

export interface FunnelReport extends FunnelSummary {
  goal: { id: string; name: string };
  version: number;
  versionNote: string | null;
  /** The newest version of the goal; differs from `version` while it is being rebuilt. */
  latestVersion: number;
  /** True while the latest version's progress is rebuilt and an older version is shown. */
  rebuilding: boolean;
  range: { from: string; to: string; tz: string };
  /** The range as dates in its zone, for people ("23 Feb – 1 Mar 2025 (Europe/Berlin)"). */
  rangeLabel: string;
  filters: SegmentFilter[];
  windowSeconds: number;
  window: string;
  mode: Mode;
  /**
   * Which data answered: progress rows per person, rollups of them (large ranges), or the
   * Durable Object's stored events (overrides).
   */
  source: 'progress' | 'rollup' | 'events';
  overTime: Array<{ bucket: string; entered: number; completed: number }>;
  interval: Interval;
  /** How many breakdown values are shown before the rest is grouped as `other`. */
  top: number;
  breakdown: { by: string; top: number; groups: BreakdownGroup[] } | null;
  /** What each step and rule means, written out from the definition. */
  glossary: GlossaryEntry[];
  generatedAt: string;
}

/**
 * Keeps the people whose segment at entry passes every filter key (any of that key's values; a
 * null value stands for a missing one, as the `none` group of a breakdown).
 */
export function applyFilters(
  rows: readonly CountedAttempt[],
  filters: readonly SegmentFilter[],
): readonly CountedAttempt[] {
  if (filters.length === 0) return rows;
  const wanted = new Map<string, Set<string | null>>();
  for (const { key, value } of filters) wanted.set(key, (wanted.get(key) ?? new Set()).add(value));
  return rows.filter((row) =>
    [...wanted].every(([key, values]) => values.has(row.segment[key] ?? null)),
  );
}

/**
 * Shapes the answer every format renders. Pure: the counted attempts are passed in, or the
 * numbers the rollups gave.
 */
export function buildReport(input: {
  goal: Goal & { note: string | null; createdBy?: string | null };
  /** The goal's own mode and window, when the view overrides them. */
  defined: { mode: Mode; window: string };
  view: ReportView;
  rows: readonly CountedAttempt[];
  aggregated?: AggregatedFunnel | null;
  source: FunnelReport['source'];
  latestVersion: number;
  rebuilding: boolean;
  range: ReportRange;
  now: number;
}): FunnelReport {
  const { goal, range, view, now } = input;
  const rows = applyFilters(input.rows, view.filters);
  return {
    goal: { id: goal.id, name: goal.name },
    version: goal.version,
    versionNote: goal.note,
    latestVersion: input.latestVersion,
    rebuilding: input.rebuilding,
    range: { from: isoInstant(range.from), to: isoInstant(range.to), tz: range.tz },
    rangeLabel: formatRange(range),
    filters: view.filters,
    windowSeconds: goal.windowMs / 1000,
    window: view.window,
    mode: view.mode,
    source: input.source,
    generatedAt: isoInstant(now),
    ...(input.aggregated?.summary ?? summarize(goal, rows, now)),
    interval: view.interval,
    top: view.top,
    overTime: input.aggregated?.overTime ?? overTime(goal, rows, range.tz, view.interval),
    breakdown: view.breakdown
      ? {
          by: view.breakdown,
          top: view.top,
          groups: input.aggregated?.groups ?? breakdown(goal, rows, view.breakdown, view.top, now),
        }
      : null,
    glossary: describeGoal({ goal, view, defined: input.defined }),
  };
}
