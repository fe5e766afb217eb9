/**
 * The funnel engine (docs/METRICS.md). Pure: one person's events and one goal in, that person's
 * attempts out, in any of the three ordering modes. Progress is always recomputed from event
 * time, never advanced.
 */
import type { Goal, StepDefinition } from './definition';
import {
  isTracked,
  matchesFilter,
  matchesMatcher,
  matchesStep,
  ownValue,
  type FunnelEvent,
} from './matchers';

/** The value a step's event carries for `value` metrics, with its order key for dedupe. */
export interface StepValue {
  value: number;
  order: string | null;
  messageId: string;
}

export interface Attempt {
  /** Step times in epoch ms, null where the step was not reached; `times[0]` is step 1. */
  times: Array<number | null>;
  /** 1-based index of the furthest required step reached. */
  reached: number;
  /** The event that started the attempt, whose context supplies the segment. */
  entry: FunnelEvent;
  /** Per step, the value of the goal's value property on the event that filled it. */
  values: Array<StepValue | null>;
  /** The person's traits at the start: every identify at or before it, later ones winning. */
  entryTraits: Record<string, unknown>;
}

/** Traits as of `ts`, merged from identify calls in event-time order. */
function traitsAt(identifies: readonly FunnelEvent[], ts: number): Record<string, unknown> {
  // No prototype: a trait named `__proto__` is a value, not the object's prototype.
  const traits: Record<string, unknown> = Object.create(null);
  for (const event of identifies) {
    if (event.ts > ts) break;
    for (const [key, value] of Object.entries(event.properties ?? {})) {
      if (value !== undefined && value !== null) traits[key] = value;
    }
  }
  return traits;
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

/** Identify calls at which the trait enters the step's state (from any other state). */
function traitCandidates(sorted: FunnelEvent[], step: StepDefinition): FunnelEvent[] {
  const filter = step.trait;
  if (!filter) return [];
  const found: FunnelEvent[] = [];
  let before = false;
  for (const event of sorted) {
    if (event.type !== 'identify') continue;
    const value = ownValue(event.properties, filter.property);
    if (value === undefined || value === null) continue;
    const now = matchesFilter(event.properties, filter);
    if (now && !before) found.push(event);
    before = now;
  }
  return found;
}

interface Context {
  goal: Goal;
  steps: StepDefinition[];
  tracked: FunnelEvent[];
  candidates: FunnelEvent[][];
  exclusions: Array<{ from: number; to: number; events: FunnelEvent[] }>;
  windowMs: number;
}

const WINDOW_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
function stepWindowMs(step: StepDefinition): number {
  if (!step.window) return Number.POSITIVE_INFINITY;
  const match = /^(\d+)\s*(m|h|d)$/.exec(step.window.trim());
  return match
    ? Number(match[1]) * WINDOW_MS[match[2] as keyof typeof WINDOW_MS]
    : Number.POSITIVE_INFINITY;
}

/** Held properties must be present on both events and equal as text. */
function holds(
  ctx: Context,
  first: FunnelEvent,
  event: FunnelEvent,
  step: StepDefinition,
): boolean {
  if (step.trait) return true;
  return (ctx.goal.holdConstant ?? []).every((key) => {
    const a = ownValue(first.properties, key);
    const b = ownValue(event.properties, key);
    return (
      a !== undefined && a !== null && b !== undefined && b !== null && String(a) === String(b)
    );
  });
}

/** Earliest unused candidate of step k in `[from, to]` that keeps held properties. */
function earliest(
  ctx: Context,
  k: number,
  first: FunnelEvent,
  used: Set<FunnelEvent>,
  from: number,
  to: number,
): FunnelEvent | undefined {
  const list = ctx.candidates[k] as FunnelEvent[];
  const step = ctx.steps[k] as StepDefinition;
  for (let i = lowerBound(list, from); i < list.length; i += 1) {
    const e = list[i] as FunnelEvent;
    if (e.ts > to) return undefined;
    // Step 1's own event sets the held values (in any-order mode it need not be the start).
    if (!used.has(e) && (k === 0 || holds(ctx, first, e, step))) return e;
  }
  return undefined;
}

function newAttempt(ctx: Context, entry: FunnelEvent) {
  const n = ctx.steps.length;
  return {
    events: Array.from({ length: n }, (): FunnelEvent | null => null),
    times: Array.from({ length: n }, (): number | null => null),
    entry,
  };
}
type Draft = ReturnType<typeof newAttempt>;

function fill(draft: Draft, k: number, event: FunnelEvent, time = event.ts): void {
  draft.events[k] = event;
  draft.times[k] = time;
}

/** Ordered mode: required steps greedily, then optional steps between their neighbours. */
function ordered(ctx: Context, start: FunnelEvent): Draft {
  const draft = newAttempt(ctx, start);
  const deadline = start.ts + ctx.windowMs;
  const used = new Set<FunnelEvent>([start]);
  fill(draft, 0, start);

  let previous = start.ts;
  for (let k = 1; k < ctx.steps.length; k += 1) {
    const step = ctx.steps[k] as StepDefinition;
    if (step.optional) continue;
    const limit = Math.min(deadline, previous + stepWindowMs(step));
    const next = earliest(ctx, k, start, used, previous, limit);
    if (!next) break;
    used.add(next);
    fill(draft, k, next);
    previous = next.ts;
  }

  // Optional steps: between the previous filled step and the next reached required step.
  for (let k = 1; k < ctx.steps.length; k += 1) {
    const step = ctx.steps[k] as StepDefinition;
    if (!step.optional) continue;
    let required = k - 1;
    while (ctx.steps[required]?.optional) required -= 1;
    const anchor = draft.times[required];
    if (anchor === null || anchor === undefined) continue;
    const low = Math.max(...draft.times.slice(required, k).map((t) => t ?? anchor));
    let high = deadline;
    for (let j = k + 1; j < ctx.steps.length; j += 1) {
      if (ctx.steps[j]?.optional) continue;
      high = draft.times[j] ?? deadline;
      break;
    }
    high = Math.min(high, anchor + stepWindowMs(step));
    const next = earliest(ctx, k, start, used, low, high);
    if (next) {
      used.add(next);
      fill(draft, k, next);
    }
  }
  return draft;
}

/** Strict mode: each event step is the tracked event right after the previous step's event. */
function strict(ctx: Context, start: FunnelEvent): Draft {
  const draft = newAttempt(ctx, start);
  const deadline = start.ts + ctx.windowMs;
  fill(draft, 0, start);

  let position = ctx.tracked.indexOf(start);
  let previousRequired = start.ts;
  let last = start.ts;
  for (let k = 1; k < ctx.steps.length; k += 1) {
    const step = ctx.steps[k] as StepDefinition;
    const limit = Math.min(deadline, previousRequired + stepWindowMs(step));
    let found: FunnelEvent | undefined;
    if (step.trait) {
      found = earliest(ctx, k, start, new Set(), last, limit);
    } else {
      const next = ctx.tracked[position + 1];
      if (
        next &&
        next.ts >= last &&
        next.ts <= limit &&
        matchesStep(next, step) &&
        holds(ctx, start, next, step)
      ) {
        found = next;
        position += 1;
      }
    }
    if (found) {
      fill(draft, k, found);
      last = found.ts;
      if (!step.optional) previousRequired = found.ts;
    } else if (!step.optional) {
      break;
    }
  }
  return draft;
}

/** Any-order mode: every step takes its earliest unused event in `[start, start + W]`. */
function anyOrder(ctx: Context, start: FunnelEvent): Draft | null {
  const deadline = start.ts + ctx.windowMs;
  const used = new Set<FunnelEvent>();
  const first = earliest(ctx, 0, start, used, start.ts, deadline);
  if (!first) return null;
  const draft = newAttempt(ctx, start);
  used.add(first);
  draft.events[0] = first;

  for (let k = 1; k < ctx.steps.length; k += 1) {
    const next = earliest(ctx, k, first, used, start.ts, deadline);
    if (next) {
      used.add(next);
      draft.events[k] = next;
    }
  }

  // A required step is reached once it and every earlier required step are done; its time is
  // the latest of theirs. An optional step keeps its own time, never before the last reached.
  let latest = Number.NEGATIVE_INFINITY;
  let complete = true;
  ctx.steps.forEach((step, k) => {
    const event = draft.events[k];
    if (step.optional) {
      draft.times[k] = event ? Math.max(event.ts, complete ? latest : event.ts) : null;
      return;
    }
    if (!complete || !event) {
      complete = false;
      draft.events[k] = null;
      return;
    }
    latest = Math.max(latest, event.ts);
    draft.times[k] = latest;
  });
  return draft;
}

/** 1-based index of the furthest required step a draft reached. */
function reachedOf(ctx: Context, draft: Draft): number {
  let reached = 0;
  ctx.steps.forEach((step, k) => {
    if (!step.optional && draft.times[k] !== null) reached = k + 1;
  });
  return reached;
}

/** True when an excluded event lies inside one of the goal's exclusion spans for this attempt. */
function excluded(ctx: Context, draft: Draft, startTs: number): boolean {
  const deadline = startTs + ctx.windowMs;
  return ctx.exclusions.some(({ from, to, events }) => {
    const low = draft.times[from - 1];
    if (low === null || low === undefined) return false;
    const high = draft.times[to - 1];
    return events.some((e) =>
      high === null || high === undefined
        ? e.ts > low && e.ts <= deadline
        : e.ts > low && e.ts < high,
    );
  });
}

function valuesOf(goal: Goal, draft: Draft): Array<StepValue | null> {
  const spec = goal.value;
  return draft.events.map((event, k) => {
    if (!spec || !event || draft.times[k] === null) return null;
    const value = ownValue(event.properties, spec.property);
    if (typeof value !== 'number' || !Number.isFinite(value)) return null;
    const order = spec.dedupeBy ? ownValue(event.properties, spec.dedupeBy) : undefined;
    return {
      value,
      order: order === undefined || order === null ? null : String(order),
      messageId: event.messageId,
    };
  });
}

/**
 * Every attempt of one person on one goal, at most one per distinct step-1 time (the furthest
 * reaching, then the earliest start), attempts removed by an exclusion left out.
 */
export function computeAttempts(events: FunnelEvent[], goal: Goal): Attempt[] {
  const steps = goal.steps;
  if (steps.length === 0) return [];
  const sorted = [...events].sort(byEventTime);
  const tracked = sorted.filter(isTracked);
  const identifies = sorted.filter((e) => e.type === 'identify');
  const ctx: Context = {
    goal,
    steps,
    tracked,
    windowMs: goal.windowMs,
    candidates: steps.map((step) =>
      step.trait ? traitCandidates(sorted, step) : tracked.filter((e) => matchesStep(e, step)),
    ),
    exclusions: (goal.exclusions ?? []).map((exclusion) => ({
      from: exclusion.from ?? 1,
      to: exclusion.to ?? steps.length,
      events: tracked.filter((e) => matchesMatcher(e, exclusion)),
    })),
  };
  const mode = goal.mode ?? 'ordered';

  // Attempt starts: step-1 events, or in any-order mode every required step's events.
  const starts =
    mode === 'any'
      ? [
          ...new Set(
            steps.flatMap((s, k) => (s.optional ? [] : (ctx.candidates[k] as FunnelEvent[]))),
          ),
        ].sort(byEventTime)
      : (ctx.candidates[0] as FunnelEvent[]);

  const best = new Map<number, { attempt: Attempt; start: FunnelEvent }>();
  for (const start of starts) {
    const draft =
      mode === 'any'
        ? anyOrder(ctx, start)
        : mode === 'strict'
          ? strict(ctx, start)
          : ordered(ctx, start);
    if (!draft || excluded(ctx, draft, start.ts)) continue;
    const t1 = draft.times[0] as number;
    const attempt: Attempt = {
      times: draft.times,
      reached: reachedOf(ctx, draft),
      entry: start,
      values: valuesOf(goal, draft),
      entryTraits: traitsAt(identifies, start.ts),
    };
    const held = best.get(t1);
    if (!held || attempt.reached > held.attempt.reached) best.set(t1, { attempt, start });
  }
  return [...best.values()]
    .map((b) => b.attempt)
    .sort((a, b) => (a.times[0] as number) - (b.times[0] as number));
}
