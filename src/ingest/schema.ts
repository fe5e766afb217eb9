/**
 * The zod schemas of the ingest contract. They describe the wire format (Segment's spec) and
 * feed `/openapi.json`; `normalize.ts` turns a parsed event into the stored shape.
 */
import { z } from 'zod';

export const EVENT_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * The message for an id written as a number JSON cannot hold (`1e400` parses as Infinity): the
 * ingest path and the admin people bodies answer it alike.
 */
export const nonFiniteIdError = (issue: { input?: unknown }) =>
  typeof issue.input === 'number' && !Number.isFinite(issue.input)
    ? 'a non-finite number is not an id'
    : undefined;

const id = z.union([z.string(), z.number()], { error: nonFiniteIdError }).nullish();
const timestamp = z.union([z.string(), z.number()]).nullish();
const record = z.record(z.string(), z.unknown());

export const rawEventSchema = z
  .object({
    type: z.enum(EVENT_TYPES),
    messageId: z.string().min(1).max(200).nullish(),
    anonymousId: id,
    userId: id,
    previousId: id,
    groupId: id,
    event: z.string().nullish(),
    name: z.string().nullish(),
    category: z.string().nullish(),
    timestamp,
    sentAt: timestamp,
    properties: record.nullish(),
    traits: record.nullish(),
    context: record.nullish(),
    writeKey: z.string().nullish(),
  })
  .meta({ id: 'Event', description: 'One Segment-spec message.' });

export type RawEvent = z.infer<typeof rawEventSchema>;

export const batchBodySchema = z
  .object({
    batch: z.array(z.unknown()),
    sentAt: timestamp,
    context: record.nullish(),
    writeKey: z.string().nullish(),
  })
  .meta({ id: 'Batch' });

export const rejectionSchema = z.object({
  index: z.number().int(),
  code: z.string(),
  path: z.string(),
  message: z.string(),
});

export const warningSchema = z.object({
  index: z.number().int(),
  code: z.string(),
  message: z.string(),
});

export const filteredSchema = z.object({
  index: z.number().int(),
  code: z.enum(['bot', 'prerender', 'privacy_opt_out']),
  rule: z.string(),
});

export const ingestResponseSchema = z
  .object({
    accepted: z.number().int(),
    duplicates: z.number().int(),
    rejected: z.array(rejectionSchema),
    /** Valid events kept out of funnels (bots, prerender, opt-out); stored for audit. */
    filtered: z.array(filteredSchema),
    warnings: z.array(warningSchema),
  })
  .meta({ id: 'IngestResponse' });

export type Rejection = z.infer<typeof rejectionSchema>;
export type Warning = z.infer<typeof warningSchema>;
export type Filtered = z.infer<typeof filteredSchema>;
export type IngestResponse = z.infer<typeof ingestResponseSchema>;
