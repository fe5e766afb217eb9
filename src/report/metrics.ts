/**
 * Report metrics from per-step counts and median durations (docs/METRICS.md). Pure.
 */
import type { StepDefinition } from '../funnel/definition';

export interface StepSummary {
  index: number;
  name: string;
  event: string;
  count: number;
  conversionFromPrevious: number | null;
  conversionFromFirst: number | null;
  dropOff: number;
  dropOffRate: number | null;
  medianSecondsFromPrevious: number | null;
}

export interface FunnelSummary {
  entered: number;
  completed: number;
  completionRate: number | null;
  steps: StepSummary[];
}

/**
 * `numerator / denominator` rounded half away from zero to 4 decimals, computed on integers so
 * no float error can tip a half; `0/0` (any `x/0`) is null.
 */
export function ratio(numerator: number, denominator: number): number | null {
  if (denominator === 0) return null;
  const scaled = Math.floor((2 * numerator * 10_000 + denominator) / (2 * denominator));
  return scaled / 10_000;
}

/** A median in ms as seconds with 3 decimals (whole milliseconds, half away from zero). */
export const medianSeconds = (ms: number | null) => (ms === null ? null : Math.round(ms) / 1000);

/** Builds the per-step summary from counts (`counts[k]` = people at step k+1) and medians. */
export function summarize(
  steps: readonly StepDefinition[],
  counts: readonly number[],
  medianMs: readonly (number | null)[],
): FunnelSummary {
  const first = counts[0] ?? 0;
  const summaries = steps.map((step, i): StepSummary => {
    const count = counts[i] ?? 0;
    const previous = i === 0 ? count : (counts[i - 1] ?? 0);
    const dropOff = i === 0 ? 0 : previous - count;
    return {
      index: i + 1,
      name: step.name ?? step.event,
      event: step.event,
      count,
      conversionFromPrevious: i === 0 ? (count === 0 ? null : 1) : ratio(count, previous),
      conversionFromFirst: ratio(count, first),
      dropOff,
      dropOffRate: i === 0 ? (count === 0 ? null : 0) : ratio(dropOff, previous),
      medianSecondsFromPrevious: i === 0 ? null : medianSeconds(medianMs[i] ?? null),
    };
  });
  const completed = counts[steps.length - 1] ?? 0;
  return { entered: first, completed, completionRate: ratio(completed, first), steps: summaries };
}
