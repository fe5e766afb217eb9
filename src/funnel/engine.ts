/**
 * The ordered-funnel engine (docs/METRICS.md). Pure: one person's events and one goal in, that
 * person's attempts out. Progress is always recomputed from event time, never advanced.
 */
import type { Goal } from './definition';
import { matchesStep, type FunnelEvent } from './matchers';

export interface Attempt {
  /** Step times in epoch ms; `times[0]` is the entry (step 1), `times.length` steps reached. */
  times: number[];
  /** The step-1 event, whose context supplies the segment. */
  entry: FunnelEvent;
}

/** Orders events by time, ties by message id: the one order every rule uses. */
export function byEventTime(a: FunnelEvent, b: FunnelEvent): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}

/** Index of the first event at or after `ts` in an event-time-sorted list. */
function lowerBound(events: FunnelEvent[], ts: number): number {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((events[mid] as FunnelEvent).ts < ts) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Every attempt of one person on one goal: one per distinct step-1 time. Each later step takes
 * the earliest unused matching event at or after the previous step and within the window.
 */
export function computeAttempts(events: FunnelEvent[], goal: Goal): Attempt[] {
  const sorted = [...events].sort(byEventTime);
  const [first, ...rest] = goal.steps;
  if (!first) return [];

  // Candidate events per step, already in event-time order.
  const candidates = rest.map((step) => sorted.filter((e) => matchesStep(e, step)));
  const attempts: Attempt[] = [];
  let previousStart = Number.NaN;
  for (const entry of sorted) {
    if (entry.ts === previousStart || !matchesStep(entry, first)) continue;
    previousStart = entry.ts;

    const deadline = entry.ts + goal.windowMs;
    const used = new Set<FunnelEvent>([entry]);
    const times = [entry.ts];
    for (const stepEvents of candidates) {
      const last = times[times.length - 1] as number;
      let next: FunnelEvent | undefined;
      for (let i = lowerBound(stepEvents, last); i < stepEvents.length; i += 1) {
        const e = stepEvents[i] as FunnelEvent;
        if (e.ts > deadline) break;
        if (!used.has(e)) {
          next = e;
          break;
        }
      }
      if (!next) break;
      used.add(next);
      times.push(next.ts);
    }
    attempts.push({ times, entry });
  }
  return attempts;
}
