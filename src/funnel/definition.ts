/**
 * Goal definitions: the zod schema the admin API validates and the parsed form the engine runs.
 */
import { z } from 'zod';

export const MAX_STEPS = 10;

const filterSchema = z.object({
  property: z.string().min(1).max(200),
  op: z.enum(['eq', 'neq', 'contains', 'in', 'gt', 'lt', 'set']).default('eq'),
  value: z.unknown().optional(),
});

const stepSchema = z.object({
  event: z.string().min(1).max(200),
  name: z.string().min(1).max(200).optional(),
  where: z.array(filterSchema).max(20).optional(),
});

const WINDOW_PATTERN = /^(\d{1,5})\s*(m|h|d)$/;

export const goalInputSchema = z
  .object({
    name: z.string().min(1).max(200),
    steps: z.array(stepSchema).min(1).max(MAX_STEPS),
    window: z.string().regex(WINDOW_PATTERN, 'a window like "30m", "12h" or "7d"').default('7d'),
    note: z.string().max(1000).optional(),
  })
  .meta({ id: 'GoalInput' });

export type GoalInput = z.infer<typeof goalInputSchema>;
export type StepFilter = z.infer<typeof filterSchema>;
export type StepDefinition = z.infer<typeof stepSchema>;

/** A goal version as the engine sees it. */
export interface Goal {
  id: string;
  version: number;
  name: string;
  steps: StepDefinition[];
  windowMs: number;
}

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Parses a window such as `7d` into milliseconds; days are exactly 24 hours. */
export function parseWindow(window: string): number {
  const match = WINDOW_PATTERN.exec(window.trim());
  if (!match) throw new Error(`not a window: ${window}`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}
