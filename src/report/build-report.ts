/** Assembles a funnel report for one goal and range from D1's progress rows. */
import type { StoredGoal } from '../funnel/goal-store';
import { queryFunnel } from './funnel-query';
import { summarize, type FunnelSummary } from './metrics';
import { isoInstant, type ReportRange } from './range';

export interface FunnelReport extends FunnelSummary {
  goal: { id: string; name: string };
  version: number;
  versionNote: string | null;
  range: { from: string; to: string; tz: string };
  windowSeconds: number;
  window: string;
  mode: 'ordered';
  /** Which data answered: progress rows (the aggregate path). */
  source: 'progress';
  generatedAt: string;
}

/** Runs the report query and shapes the answer every format renders. */
export async function buildReport(
  db: D1Database,
  input: { siteId: string; goal: StoredGoal; range: ReportRange; now: number },
): Promise<FunnelReport> {
  const { goal, range } = input;
  const { counts, medianMs } = await queryFunnel(db, {
    siteId: input.siteId,
    goalId: goal.id,
    version: goal.version,
    steps: goal.steps.length,
    from: range.from,
    to: range.to,
  });
  return {
    goal: { id: goal.id, name: goal.name },
    version: goal.version,
    versionNote: goal.note,
    range: { from: isoInstant(range.from), to: isoInstant(range.to), tz: range.tz },
    windowSeconds: goal.windowMs / 1000,
    window: goal.window,
    mode: 'ordered',
    source: 'progress',
    generatedAt: isoInstant(input.now),
    ...summarize(goal.steps, counts, medianMs),
  };
}
