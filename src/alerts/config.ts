/**
 * The detector configuration of a site (and the per-goal overrides): one zod schema whose
 * defaults are the documented thresholds of docs/ALERTS.md.
 */
import { z } from 'zod';

const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;

/**
 * A site's own rule on one event: absolute (`below`, `recoverAt`) or relative (`dropPct`,
 * `recoverPct`), never both. Unknown keys are refused, so a contradictory rule is an error rather
 * than a rule silently judged by half of what it says.
 */
const ruleSchema = z
  .strictObject({
    id: z.string().min(1).max(100),
    event: z.string().min(1).max(200),
    /** Absolute: fires when the hourly count is below this. */
    below: z.number().int().min(1).optional(),
    /** Absolute: resolves only once the count is at least this; default ⌈`below` × 1.2⌉. */
    recoverAt: z.number().int().min(1).optional(),
    /** Relative: fires when the count is this many percent under the seasonal baseline. */
    dropPct: z.number().min(1).max(100).optional(),
    /** Relative: resolves only once the drop is at most this many percent; default half. */
    recoverPct: z.number().min(0).max(100).optional(),
  })
  .superRefine((rule, ctx) => {
    const problem = (path: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [path], message });
    if (rule.below !== undefined && rule.dropPct !== undefined) {
      problem('dropPct', 'a rule is absolute (below) or relative (dropPct), not both');
    } else if (rule.below === undefined && rule.dropPct === undefined) {
      problem('below', 'a rule needs below (absolute) or dropPct (relative)');
    } else if (rule.below !== undefined && rule.recoverPct !== undefined) {
      problem('recoverPct', 'belongs to a relative rule; an absolute rule recovers at recoverAt');
    } else if (rule.dropPct !== undefined && rule.recoverAt !== undefined) {
      problem('recoverAt', 'belongs to an absolute rule; a relative rule recovers at recoverPct');
    } else if (rule.below !== undefined && rule.recoverAt !== undefined) {
      if (rule.recoverAt <= rule.below) {
        problem(
          'recoverAt',
          `must be above below (${rule.below}): recovery apart from the trigger`,
        );
      }
    } else if (rule.dropPct !== undefined && rule.recoverPct !== undefined) {
      if (rule.recoverPct >= rule.dropPct) {
        problem(
          'recoverPct',
          `must be under dropPct (${rule.dropPct}): recovery apart from the trigger`,
        );
      }
    }
  });

/** A rule's trigger and recovery levels, with the documented defaults filled in. */
export type RuleLevels =
  | { kind: 'absolute'; below: number; recoverAt: number }
  | { kind: 'relative'; dropPct: number; recoverPct: number };

/** The levels of a validated rule (the schema guarantees exactly one of `below` / `dropPct`). */
export function ruleLevels(rule: AlertRule): RuleLevels {
  if (rule.below !== undefined) {
    return {
      kind: 'absolute',
      below: rule.below,
      recoverAt: rule.recoverAt ?? Math.ceil(rule.below * 1.2),
    };
  }
  const dropPct = rule.dropPct ?? 100;
  return { kind: 'relative', dropPct, recoverPct: rule.recoverPct ?? dropPct / 2 };
}

const quietWindowSchema = z
  .strictObject({
    /** Days of the week in the site's time zone, 0 = Sunday; default every day. */
    days: z.array(z.number().int().min(0).max(6)).optional(),
    start: z.string().regex(HH_MM, 'a time like "22:00"'),
    end: z.string().regex(HH_MM, 'a time like "07:00"'),
  })
  // Equal times would read as a whole day to one person and as no time to another: refused.
  .refine((w) => w.start !== w.end, {
    path: ['end'],
    message: 'must differ from start (an empty window); a window may cross midnight',
  });

const maintenanceSchema = z
  .strictObject({
    from: z.iso.datetime({ offset: true }),
    to: z.iso.datetime({ offset: true }),
    note: z.string().max(500).optional(),
  })
  .refine((m) => Date.parse(m.from) < Date.parse(m.to), {
    path: ['to'],
    message: 'must be after from',
  });

const timeZoneSchema = z.string().refine((zone) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}, 'an IANA time zone such as "Europe/Berlin"');

/** Every detector parameter with its default; see docs/ALERTS.md for what each one does. */
const configShape = {
  /** Minutes after an hour ends before its bucket is judged (late events). */
  graceMinutes: z.number().int().min(0).max(180).default(15),
  /** Fewer expected events than this in a window is never judged. */
  minExpected: z.number().min(1).default(20),
  /** One-sided significance level of every count test. */
  alpha: z.number().gt(0).lt(0.5).default(0.001),
  /** A step fires when observed ≤ this × expected (and the test is significant). */
  dropRatio: z.number().gt(0).lt(1).default(0.5),
  /** An open alert resolves when observed ≥ this × expected. */
  recoverRatio: z.number().gt(0).max(1).default(0.75),
  /** The rest of the site (and the previous step) "holds" at observed ≥ this × expected. */
  holdRatio: z.number().gt(0).max(1).default(0.8),
  /** How a site-wide traffic dip is reported: as a warning, as info, or not at all. */
  trafficDip: z.enum(['warning', 'info', 'off']).default('info'),
  /** Same-hour-of-week history used for the baseline, and the minimum needed. */
  baselineWeeks: z.number().int().min(1).max(12).default(4),
  minWeeks: z.number().int().min(1).max(12).default(2),
  /** The short-history fallback: same hour over the previous days, and the minimum. */
  fallbackDays: z.number().int().min(1).max(28).default(7),
  minDays: z.number().int().min(1).max(28).default(3),
  /** Longest window a low-volume step may be summed over, in hours. */
  maxWindowHours: z.number().int().min(1).max(168).default(24),
  /** Step conversion (k from k−1): events needed at step k−1, and expected at step k. */
  conversionMinSample: z.number().int().min(1).default(50),
  conversionMinExpected: z.number().min(1).default(10),
  /** Properties watched for drift besides every step filter's property. */
  watchFields: z
    .array(z.string().regex(/^(properties|context)(\.[A-Za-z0-9_$-]+)+$/))
    .max(10)
    .default(['context.page.referrer', 'context.campaign.source']),
  /** Events of a step needed in a window before a property is judged. */
  fieldMinSample: z.number().int().min(1).default(30),
  /** A property must be on at least this share of a step's events to be "expected". */
  fieldMinShare: z.number().gt(0).max(1).default(0.5),
  /** Rejected share: floor, multiple of the baseline share, and requests needed. */
  rejectedMinShare: z.number().gt(0).lt(1).default(0.1),
  rejectedFactor: z.number().min(1).default(3),
  rejectedMinSample: z.number().int().min(1).default(300),
  /** Reminder interval while an alert stays open. */
  repeatHours: z.number().min(0.25).max(168).default(4),
  /** A repeat before the reminder is due when the drop deepens by this much (0..1). */
  worseBy: z.number().gt(0).max(1).default(0.2),
  rules: z
    .array(ruleSchema)
    .max(50)
    .superRefine((rules, ctx) => {
      const seen = new Set<string>();
      rules.forEach((rule, index) => {
        if (seen.has(rule.id)) {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'id'],
            message: `duplicate rule id "${rule.id}"`,
          });
        }
        seen.add(rule.id);
      });
    })
    .default([]),
  /**
   * A share link of the site's reports (`https://…/r/<share token>`): notices link to the
   * goal's report for the alert's day. Without it they carry no link (tokens are stored hashed).
   */
  reportLink: z
    .url({ protocol: /^https?$/, error: 'an http(s) URL' })
    .max(500)
    .optional(),
  timeZone: timeZoneSchema.default('UTC'),
  /** Notifications below critical wait until a quiet window ends. */
  quietWindows: z.array(quietWindowSchema).max(20).default([]),
  /** Buckets overlapping a maintenance window are not judged. */
  maintenance: z.array(maintenanceSchema).max(50).default([]),
};

/** A config with every key set: the defaults under the site's keys under a goal's. */
export const alertConfigSchema = z.object(configShape).meta({ id: 'AlertConfig' });

export type AlertConfig = z.infer<typeof alertConfigSchema>;
export type AlertRule = AlertConfig['rules'][number];
export type QuietWindow = AlertConfig['quietWindows'][number];

type Undefaulted<T extends z.ZodRawShape> = {
  [K in keyof T]: z.ZodOptional<T[K] extends z.ZodDefault<infer Inner> ? Inner : T[K]>;
};

/**
 * The same keys, each optional and without its default: what a layer stores is exactly what it
 * was given, so a layer never resets the keys of the layer under it to the defaults.
 */
function undefaulted<T extends z.ZodRawShape>(shape: T): Undefaulted<T> {
  return Object.fromEntries(
    Object.entries(shape).map(([key, schema]) => [
      key,
      z.optional(schema instanceof z.ZodDefault ? schema.removeDefault() : schema),
    ]),
  ) as Undefaulted<T>;
}

/** A site's stored config: any subset of the keys; unknown keys are refused. */
export const alertConfigInputSchema = z
  .strictObject(undefaulted(configShape))
  .meta({ id: 'AlertConfigInput' });
export type AlertConfigInput = z.infer<typeof alertConfigInputSchema>;

/**
 * The keys a goal may override: the thresholds of the checks that concern that goal alone
 * (docs/ALERTS.md). Rules, watched fields, reminders, windows and the rejected share are
 * site-wide.
 */
const GOAL_KEYS = [
  'minExpected',
  'alpha',
  'dropRatio',
  'recoverRatio',
  'holdRatio',
  'baselineWeeks',
  'minWeeks',
  'fallbackDays',
  'minDays',
  'maxWindowHours',
  'conversionMinSample',
  'conversionMinExpected',
  'fieldMinSample',
  'fieldMinShare',
] as const satisfies ReadonlyArray<keyof typeof configShape>;

const goalShape = undefaulted(
  Object.fromEntries(GOAL_KEYS.map((key) => [key, configShape[key]])) as Pick<
    typeof configShape,
    (typeof GOAL_KEYS)[number]
  >,
);

/** A goal's stored overrides; a site-wide key is refused with the reason. */
export const goalConfigInputSchema = z
  .strictObject(goalShape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `${issue.keys.join(', ')}: not a per-goal key; site-wide keys are set in the site config`
        : undefined,
  })
  .meta({ id: 'AlertGoalConfigInput' });
export type GoalConfigInput = z.infer<typeof goalConfigInputSchema>;

/** How stored layers are read back: keys a later version dropped are ignored, not fatal. */
export const storedSiteConfigSchema = z.object(undefaulted(configShape));
export const storedGoalConfigSchema = z.object(goalShape);

/** The defaults with the site's stored overrides and then a goal's on top. */
export function resolveConfig(...layers: Array<AlertConfigInput | null | undefined>): AlertConfig {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) merged[key] = value;
    }
  }
  return alertConfigSchema.parse(merged);
}

/** A problem of an effective config that no single key shows: the key to fix and why. */
export interface ConfigProblem {
  field: string;
  message: string;
}

/**
 * Checks that span keys, on the effective config (a goal's keys are checked together with the
 * site's they are laid over): minimum history within the history used, and each recovery level
 * apart from its trigger level (hysteresis).
 */
export function configProblems(config: AlertConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (config.minWeeks > config.baselineWeeks) {
    problems.push({
      field: 'minWeeks',
      message: `must not exceed baselineWeeks (${config.baselineWeeks})`,
    });
  }
  if (config.minDays > config.fallbackDays) {
    problems.push({
      field: 'minDays',
      message: `must not exceed fallbackDays (${config.fallbackDays})`,
    });
  }
  if (config.recoverRatio <= config.dropRatio) {
    problems.push({
      field: 'recoverRatio',
      message: `must be above dropRatio (${config.dropRatio}): recovery apart from the trigger`,
    });
  }
  return problems;
}
