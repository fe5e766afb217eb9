/**
 * Goal definitions: the zod schema the admin API validates and the parsed form the engine runs
 * (docs/METRICS.md, "Semantics by mode and option").
 */
import { z } from 'zod';

export const MAX_STEPS = 10;

const filterSchema = z
  .object({
    property: z.string().min(1).max(200),
    op: z.enum(['eq', 'neq', 'contains', 'in', 'gt', 'lt', 'set']).default('eq'),
    value: z.unknown().optional(),
  })
  // A filter that can never match is a definition error, not a silent zero.
  .refine((f) => f.op !== 'in' || Array.isArray(f.value), {
    message: '`in` needs a list value',
    path: ['value'],
  })
  .refine((f) => (f.op !== 'gt' && f.op !== 'lt') || typeof f.value === 'number', {
    message: '`gt` and `lt` need a number value',
    path: ['value'],
  })
  .refine((f) => f.op === 'set' || f.value !== undefined, {
    message: 'this filter needs a value',
    path: ['value'],
  });

/** One event matcher: a name, a page/screen path or URL pattern, and property filters. */
const matcherSchema = z.object({
  event: z.string().min(1).max(200).optional(),
  type: z.enum(['track', 'page', 'screen']).optional(),
  path: z.string().min(1).max(500).optional(),
  url: z.string().min(1).max(2000).optional(),
  where: z.array(filterSchema).max(20).optional(),
});

const WINDOW_PATTERN = /^(\d{1,5})\s*(m|h|d)$/;
const windowSchema = z
  .string()
  .regex(WINDOW_PATTERN, 'a window like "30m", "12h" or "7d"')
  .refine((window) => !/^0+\s*[mhd]$/.test(window.trim()), 'a window must be longer than zero');

const stepSchema = matcherSchema.extend({
  name: z.string().min(1).max(200).optional(),
  /** Several matchers, any of which reaches the step (multi-path steps). */
  anyOf: z.array(matcherSchema).min(1).max(10).optional(),
  /** A person-trait step, reached when an identify first gives the trait this state. */
  trait: filterSchema.optional(),
  optional: z.boolean().optional(),
  /** The longest time from the previous required step. */
  window: windowSchema.optional(),
});

const exclusionSchema = matcherSchema.extend({
  from: z.number().int().min(1).max(MAX_STEPS).optional(),
  to: z.number().int().min(1).max(MAX_STEPS).optional(),
});

export const MODES = ['ordered', 'strict', 'any'] as const;
export type Mode = (typeof MODES)[number];

export const goalInputSchema = z
  .object({
    name: z.string().min(1).max(200),
    steps: z.array(stepSchema).min(1).max(MAX_STEPS),
    window: windowSchema.default('7d'),
    mode: z.enum(MODES).default('ordered'),
    exclusions: z.array(exclusionSchema).max(10).optional(),
    holdConstant: z.array(z.string().min(1).max(200)).max(5).optional(),
    value: z
      .object({
        property: z.string().min(1).max(200),
        dedupeBy: z.string().min(1).max(200).optional(),
      })
      .optional(),
    note: z.string().max(1000).optional(),
  })
  .meta({ id: 'GoalInput' });

export type GoalInput = z.infer<typeof goalInputSchema>;
export type StepFilter = z.infer<typeof filterSchema>;
export type EventMatcher = z.infer<typeof matcherSchema>;
export type StepDefinition = z.infer<typeof stepSchema>;
export type Exclusion = z.infer<typeof exclusionSchema>;

/** The stored definition: everything of the input but its name and note. */
export type GoalDefinition = Omit<GoalInput, 'name' | 'note'>;

/** A goal version as the engine sees it. */
export interface Goal {
  id: string;
  version: number;
  name: string;
  steps: StepDefinition[];
  windowMs: number;
  mode?: Mode;
  exclusions?: Exclusion[];
  holdConstant?: string[];
  value?: { property: string; dedupeBy?: string };
}

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses a window such as `7d` into milliseconds; days are exactly 24 hours. */
export function parseWindow(window: string): number {
  const match = WINDOW_PATTERN.exec(window.trim());
  if (!match) throw new Error(`not a window: ${window}`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

/** A definition problem the schema alone cannot see, with a stable code and the step path. */
export interface DefinitionIssue {
  code: string;
  path: string;
  message: string;
}

/** The event names a step or matcher can match (empty when it matches by path, URL or trait). */
export function namesOf(matcher: EventMatcher & { anyOf?: EventMatcher[] }): string[] {
  const own = matcher.event ? [matcher.event] : [];
  return [...own, ...(matcher.anyOf ?? []).flatMap((m) => (m.event ? [m.event] : []))];
}

function matcherIssue(matcher: EventMatcher, path: string): DefinitionIssue | null {
  // A track call has no path or URL: such a matcher could never match anything.
  if (matcher.type === 'track' && (matcher.path || matcher.url)) {
    return {
      code: 'mixed_step',
      path,
      message: 'path and url match page or screen calls, not type "track"',
    };
  }
  if (matcher.event || matcher.path || matcher.url) return null;
  return { code: 'empty_matcher', path, message: 'a matcher needs event, path or url' };
}

/** The fields of a step's own matcher that a trait or an `anyOf` step would silently ignore. */
const ownMatcherFields = (step: StepDefinition) =>
  (['event', 'type', 'path', 'url', 'where'] as const).filter((key) => step[key] !== undefined);

/** Checks the rules between fields: one kind of matcher per step, exclusions, optional steps. */
export function checkDefinition(goal: GoalInput): DefinitionIssue[] {
  const issues: DefinitionIssue[] = [];
  const last = goal.steps.length - 1;
  goal.steps.forEach((step, i) => {
    const path = `steps.${i}`;
    const own = ownMatcherFields(step);
    if (step.trait) {
      if (own.length > 0 || step.anyOf) {
        const fields = [...own, ...(step.anyOf ? ['anyOf'] : [])].join(', ');
        issues.push({
          code: 'mixed_step',
          path,
          message: `a trait step has no event matcher; remove ${fields}`,
        });
      }
      if (i === 0) {
        issues.push({ code: 'trait_first_step', path, message: 'step 1 must match an event' });
      }
    } else if (step.anyOf) {
      if (own.length > 0) {
        issues.push({
          code: 'mixed_step',
          path,
          message: `an anyOf step matches by its list only; move ${own.join(', ')} into it`,
        });
      }
      step.anyOf.forEach((m, j) => {
        const issue = matcherIssue(m, `${path}.anyOf.${j}`);
        if (issue) issues.push(issue);
      });
    } else {
      const issue = matcherIssue(step, path);
      if (issue) issues.push(issue);
    }
    if (i === 0 && step.window) {
      issues.push({
        code: 'window_on_first_step',
        path: `${path}.window`,
        message: 'a step window runs from the previous step; step 1 has none',
      });
    }
    if (step.optional && (i === 0 || i === last)) {
      issues.push({
        code: 'optional_edge_step',
        path: `${path}.optional`,
        message: 'the first and the last step cannot be optional',
      });
    }
  });

  const stepNames = new Set(goal.steps.flatMap((step) => namesOf(step)));
  (goal.exclusions ?? []).forEach((exclusion, i) => {
    const path = `exclusions.${i}`;
    const issue = matcherIssue(exclusion, path);
    if (issue) issues.push(issue);
    const sameAsStep = goal.steps.some(
      (step) =>
        !exclusion.event &&
        (exclusion.path ?? null) === (step.path ?? null) &&
        (exclusion.url ?? null) === (step.url ?? null) &&
        (exclusion.type ?? null) === (step.type ?? null) &&
        (exclusion.path !== undefined || exclusion.url !== undefined),
    );
    if (sameAsStep) {
      issues.push({
        code: 'exclusion_is_step',
        path,
        message: 'this exclusion matches the same pages as a step of this goal',
      });
    }
    if (exclusion.event && stepNames.has(exclusion.event)) {
      issues.push({
        code: 'exclusion_is_step',
        path: `${path}.event`,
        message: `${exclusion.event} is a step of this goal and cannot also be excluded`,
      });
    }
    const from = exclusion.from ?? 1;
    const to = exclusion.to ?? goal.steps.length;
    if (!(from < to) || to > goal.steps.length) {
      issues.push({
        code: 'invalid_exclusion_range',
        path,
        message: `exclusion steps must satisfy 1 <= from < to <= ${goal.steps.length}`,
      });
    }
  });
  return issues;
}

/** Turns a stored definition into the engine's goal. */
export function toEngineGoal(
  meta: { id: string; version: number; name: string },
  definition: GoalDefinition,
): Goal {
  return {
    ...meta,
    steps: definition.steps,
    windowMs: parseWindow(definition.window),
    mode: definition.mode ?? 'ordered',
    exclusions: definition.exclusions,
    holdConstant: definition.holdConstant,
    value: definition.value,
  };
}
