/** Assembles a funnel report for one goal version and range from counted attempts. */
import type { Goal, Mode } from '../funnel/definition';
import type { CountedAttempt, FunnelSummary } from './metrics';
import { summarize } from './metrics';
import { isoInstant, type ReportRange } from './range';
import type { AggregatedFunnel } from './rollup-report';
import { breakdown, overTime, type Interval } from './slices';

export interface ReportView {
  mode: Mode;
  window: string;
  breakdown: string | null;
  top: number;
  interval: Interval;
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
  breakdown: { by: string; top: number; groups: Array<{ value: string } & FunnelSummary> } | null;
  generatedAt: string;
}

/**
 * Shapes the answer every format renders. Pure: the counted attempts are passed in, or the
 * numbers the rollups gave.
 */
export function buildReport(input: {
  goal: Goal & { note: string | null };
  view: ReportView;
  rows: readonly CountedAttempt[];
  aggregated?: AggregatedFunnel | null;
  source: FunnelReport['source'];
  latestVersion: number;
  rebuilding: boolean;
  range: ReportRange;
  now: number;
}): FunnelReport {
  const { goal, range, view, rows, now } = input;
  return {
    goal: { id: goal.id, name: goal.name },
    version: goal.version,
    versionNote: goal.note,
    latestVersion: input.latestVersion,
    rebuilding: input.rebuilding,
    range: { from: isoInstant(range.from), to: isoInstant(range.to), tz: range.tz },
    windowSeconds: goal.windowMs / 1000,
    window: view.window,
    mode: view.mode,
    source: input.source,
    generatedAt: isoInstant(now),
    ...(input.aggregated?.summary ?? summarize(goal, rows, now)),
    interval: view.interval,
    overTime: input.aggregated?.overTime ?? overTime(goal, rows, range.tz, view.interval),
    breakdown: view.breakdown
      ? {
          by: view.breakdown,
          top: view.top,
          groups:
            input.aggregated?.groups ?? breakdown(goal, rows, view.breakdown, view.top, now),
        }
      : null,
  };
}
