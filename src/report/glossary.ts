/**
 * The report's glossary: what each step and rule of the goal version means, written out in
 * words from its definition (docs/METRICS.md), so that nobody argues about what a step counts.
 * Pure.
 */
import type { EventMatcher, Goal, Mode, StepDefinition, StepFilter } from '../funnel/definition';

export interface GlossaryEntry {
  term: string;
  meaning: string;
}

const quote = (value: unknown) => JSON.stringify(value);

const OPS: Record<StepFilter['op'], (value: unknown) => string> = {
  eq: (v) => `equal to ${quote(v)}`,
  neq: (v) => `not equal to ${quote(v)} (or missing)`,
  contains: (v) => `containing ${quote(String(v))}`,
  in: (v) => `one of ${(Array.isArray(v) ? v : [v]).map(quote).join(', ')}`,
  gt: (v) => `greater than ${String(v)}`,
  lt: (v) => `less than ${String(v)}`,
  set: () => 'set (any value)',
};

/** One property filter in words: `property "plan" equal to "pro"`. */
export function describeFilter(filter: StepFilter): string {
  return `${quote(filter.property)} ${OPS[filter.op](filter.value)}`;
}

const CALL = { track: 'a track event', page: 'a page or screen call', screen: 'a screen call' };

/** One event matcher in words: its call type, name, path or URL pattern and filters. */
export function describeMatcher(matcher: EventMatcher): string {
  const named = matcher.path !== undefined || matcher.url !== undefined;
  const call = matcher.type ? CALL[matcher.type] : named ? 'a page or screen call' : 'an event';
  const parts = [matcher.event !== undefined ? `${call} named ${quote(matcher.event)}` : call];
  if (matcher.path !== undefined) parts.push(`whose path matches ${quote(matcher.path)}`);
  if (matcher.url !== undefined) parts.push(`whose URL matches ${quote(matcher.url)}`);
  const where = matcher.where ?? [];
  if (where.length > 0) {
    parts.push(`with property ${where.map(describeFilter).join(' and property ')}`);
  }
  return parts.join(' ');
}

/**
 * A step's matcher in words, with its optional flag and its own window, as the view's mode
 * applies them (in any order, per-step windows do not apply and any required step can start).
 */
export function describeStep(step: StepDefinition, index: number, mode: Mode): string {
  let what: string;
  if (step.trait) {
    what =
      `the person's trait ${describeFilter(step.trait)}, reached when the trait first takes ` +
      'that value (from an identify call), and again each time it takes the value after ' +
      'having left it';
  } else if (step.anyOf) {
    what = `any of: ${step.anyOf.map(describeMatcher).join('; or ')}`;
  } else {
    what = describeMatcher(step);
  }
  const notes: string[] = [];
  if (step.optional) {
    notes.push(
      'optional: a person may skip it; its count is the people who did it, and the next ' +
        'step is measured from the previous required step',
    );
  }
  if (step.window && index > 0) {
    notes.push(
      mode === 'any'
        ? `its own window (${step.window} from the previous step) does not apply in any order`
        : `within ${step.window} of the previous required step (inclusive)`,
    );
  }
  if (index === 0) {
    notes.push(
      mode === 'any'
        ? 'in any order a person enters at the first event matching any required step'
        : 'this is where a person enters',
    );
  }
  return `${what}${notes.length > 0 ? `. ${notes.map(capitalise).join('. ')}` : ''}.`;
}

const capitalise = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

const MODE_RULE: Record<Mode, string> = {
  ordered: 'in order, with any other events allowed in between',
  strict: 'in strict order: each step must be the very next tracked event after the previous one',
  any: 'in any order, each step taken by its earliest matching event',
};

/** Every glossary entry of a report: steps, exclusions, rules, window, counting and version. */
export function describeGoal(input: {
  goal: Goal & { note: string | null; createdBy?: string | null };
  /** The window and mode this view uses (an override may differ from the goal's). */
  view: { mode: Mode; window: string };
  /** The goal's own window and mode, to say when the view overrides them. */
  defined: { mode: Mode; window: string };
}): GlossaryEntry[] {
  const { goal, view, defined } = input;
  const entries: GlossaryEntry[] = goal.steps.map((step, i) => ({
    term: `Step ${i + 1}: ${step.name ?? `step ${i + 1}`}`,
    meaning: describeStep(step, i, view.mode),
  }));
  for (const exclusion of goal.exclusions ?? []) {
    const from = exclusion.from ?? 1;
    const to = exclusion.to ?? goal.steps.length;
    entries.push({
      term: 'Exclusion',
      meaning:
        `${capitalise(describeMatcher(exclusion))} between step ${from} and step ${to} ` +
        'removes that attempt.',
    });
  }
  for (const property of goal.holdConstant ?? []) {
    entries.push({
      term: 'Held constant',
      meaning:
        `Every event step after step 1 must carry property ${quote(property)} with the same ` +
        'value as step 1; an event without it does not match.',
    });
  }
  if (goal.value) {
    const dedupe = goal.value.dedupeBy
      ? `, each order counted once by ${quote(goal.value.dedupeBy)}`
      : '';
    entries.push({
      term: 'Value',
      meaning: `The sum of property ${quote(goal.value.property)} of each step's events${dedupe}.`,
    });
  }
  const overridden = (what: string, mine: string, theirs: string) =>
    mine === theirs ? '' : ` (this view overrides the goal's ${what}, ${theirs})`;
  entries.push({
    term: 'Window',
    meaning:
      `Every step within ${view.window} of ${view.mode === 'any' ? 'entry' : 'step 1'}, the ` +
      `boundary included${overridden('window', view.window, defined.window)}.` +
      (view.mode === 'any' && goal.steps.some((step) => step.window)
        ? " In any order the steps' own windows do not apply."
        : ''),
  });
  entries.push({
    term: 'Counting rule',
    meaning:
      `Steps are matched ${MODE_RULE[view.mode]}` +
      `${overridden('order', view.mode, defined.mode)}. A person enters at a step-1 event in ` +
      'the range; of several attempts the furthest counts (then the earliest). Each person ' +
      'counts once, after devices are stitched to users. People whose window is still open ' +
      'are shown as in progress, not as dropped, and left out of the rates they could still ' +
      'change.',
  });
  const by = goal.createdBy ? `, saved by ${goal.createdBy}` : '';
  entries.push({
    term: 'Goal version',
    meaning: `Version ${goal.version}${by}${goal.note ? `: ${goal.note}` : ' (no note)'}.`,
  });
  return entries;
}
