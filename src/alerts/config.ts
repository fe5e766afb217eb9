/**
 * The detector configuration of a site (and the per-goal overrides): one zod schema whose
 * defaults are the documented thresholds of docs/ALERTS.md.
 */
import { z } from 'zod';

const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;

const absoluteRuleSchema = z.object({
  id: z.string().min(1).max(100),
  event: z.string().min(1).max(200),
  /** Fires when the hourly count is below this. */
  below: z.number().int().min(1),
  /** Resolves only once the count is at least this (hysteresis); default `below` × 1.2. */
  recoverAt: z.number().int().min(1).optional(),
});

const relativeRuleSchema = z.object({
  id: z.string().min(1).max(100),
  event: z.string().min(1).max(200),
  /** Fires when the count is this many percent under the seasonal baseline. */
  dropPct: z.number().min(1).max(100),
  /** Resolves only once the drop is at most this many percent; default half of `dropPct`. */
  recoverPct: z.number().min(0).max(100).optional(),
});

const quietWindowSchema = z.object({
  /** Days of the week in the site's time zone, 0 = Sunday; default every day. */
  days: z.array(z.number().int().min(0).max(6)).optional(),
  start: z.string().regex(HH_MM, 'a time like "22:00"'),
  end: z.string().regex(HH_MM, 'a time like "07:00"'),
});

const maintenanceSchema = z.object({
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  note: z.string().max(500).optional(),
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
export const alertConfigSchema = z
  .object({
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
    /** How a traffic dip is reported: as a warning, as info, or not at all. */
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
      .array(z.union([absoluteRuleSchema, relativeRuleSchema]))
      .max(50)
      .default([]),
    /**
     * A share link of the site's reports (`https://…/r/<share token>`): notices link to the
     * goal's report for the alert's day. Without it they carry no link (tokens are stored hashed).
     */
    reportLink: z.url().max(500).optional(),
    timeZone: timeZoneSchema.default('UTC'),
    /** Notifications below critical wait until a quiet window ends. */
    quietWindows: z.array(quietWindowSchema).max(20).default([]),
    /** Buckets overlapping a maintenance window are not judged. */
    maintenance: z.array(maintenanceSchema).max(50).default([]),
  })
  .meta({ id: 'AlertConfig' });

export type AlertConfig = z.infer<typeof alertConfigSchema>;
export type AlertRule = AlertConfig['rules'][number];
export type QuietWindow = AlertConfig['quietWindows'][number];

/** A partial config as stored per site or goal; missing keys take the defaults. */
export const alertConfigInputSchema = alertConfigSchema.partial().meta({ id: 'AlertConfigInput' });
export type AlertConfigInput = z.infer<typeof alertConfigInputSchema>;

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
