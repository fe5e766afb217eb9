/**
 * Admin people endpoints (docs/IDENTITY.md): explain a person, merge two known users, split a
 * wrongly merged id back out, revert either, and the site's identity summary.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Env } from '../env';
import type { AdminOutcome } from '../identity/site-state-do';
import { idTextOfNumber } from '../ingest/lossless-ids';
import { nonFiniteIdError } from '../ingest/schema';
import { nowMs } from '../lib/clock';
import { ApiError } from '../lib/http-error';
import { auditStatement, type Admin } from './admin-auth';
import { parseJson, siteAdmin } from './admin-routes';

const idText = z
  .string({ error: nonFiniteIdError })
  .trim()
  .min(1)
  .max(200)
  .meta({ description: 'a user or device id; a JSON number is read as the integer text written' });

/**
 * Reads ids written as JSON numbers the way ingest does (docs/IDENTITY.md): the integer exactly
 * as written (`12345678901234567891` stays exact), else JavaScript's number text. Ids sit in the
 * `userIds` array or the `userId` and `anonymousId` fields; any other number stays a number.
 */
function numericIdsAsText(
  this: unknown,
  key: string,
  value: unknown,
  context?: { source?: string },
): unknown {
  // A non-finite number (`1e400`) stays a number, so the schema refuses it as ingest does.
  if (typeof value !== 'number' || !Number.isFinite(value)) return value;
  if (!Array.isArray(this) && key !== 'userId' && key !== 'anonymousId') return value;
  return idTextOfNumber(value, context?.source);
}

export const mergeInputSchema = z
  .object({ userIds: z.tuple([idText, idText]), note: z.string().max(1000).optional() })
  .meta({ id: 'MergeInput' });

export const splitInputSchema = z
  .object({
    userId: idText.optional(),
    anonymousId: idText.optional(),
    note: z.string().max(1000).optional(),
  })
  .refine((v) => (v.userId === undefined) !== (v.anonymousId === undefined), {
    message: 'give exactly one of userId and anonymousId',
  })
  .meta({ id: 'SplitInput' });

type AppContext = Context<{ Bindings: Env }>;

async function siteOf(c: AppContext): Promise<{ siteId: string; admin: Admin; by: string }> {
  const { siteId, admin } = await siteAdmin(c);
  return { siteId, admin, by: admin.name };
}

function answer<T>(c: AppContext, outcome: AdminOutcome<T>, status: 200 | 201 = 200) {
  if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
  return c.json(outcome.value as object, status);
}

/**
 * Writes the audit entry of a people action that took effect (a refused one changed nothing).
 * The action already lives in the site object, which keeps its own record (who, when, note) for
 * explain; this entry puts it in the site's audit log beside every other admin change.
 */
async function audit<T>(
  c: AppContext,
  admin: Admin,
  siteId: string,
  at: number,
  outcome: AdminOutcome<T>,
  entry: (value: T) => { action: string; detail: Record<string, unknown> },
): Promise<void> {
  if (!outcome.ok) return;
  const { action, detail } = entry(outcome.value);
  await c.env.DB.batch([auditStatement(c.env.DB, admin, { action, siteId, at, detail })]);
}

const stateOf = (c: AppContext, siteId: string) =>
  c.env.SITE_STATE.get(c.env.SITE_STATE.idFromName(siteId));

export const peopleRoutes = new Hono<{ Bindings: Env }>();

peopleRoutes.get('/admin/sites/:siteId/people', async (c) => {
  const { siteId } = await siteOf(c);
  const userId = c.req.query('userId');
  const anonymousId = c.req.query('anonymousId');
  if ((userId === undefined) === (anonymousId === undefined)) {
    throw new ApiError(400, 'invalid_query', 'pass exactly one of ?userId= and ?anonymousId=');
  }
  const query = userId !== undefined ? { userId } : { anonymousId: anonymousId as string };
  return answer(c, await stateOf(c, siteId).explain(query));
});

peopleRoutes.get('/admin/sites/:siteId/identity', async (c) => {
  const { siteId } = await siteOf(c);
  return c.json(await stateOf(c, siteId).stats());
});

peopleRoutes.post('/admin/sites/:siteId/people/merge', async (c) => {
  const { siteId, admin, by } = await siteOf(c);
  const input = await parseJson(c.req.raw, mergeInputSchema, numericIdsAsText);
  const who = { by, at: nowMs(c.env), note: input.note ?? null };
  const outcome = await stateOf(c, siteId).merge(siteId, input.userIds, who);
  await audit(c, admin, siteId, who.at, outcome, ({ actionId, person }) => ({
    action: 'person.merge',
    detail: { actionId, userIds: input.userIds, person, note: who.note },
  }));
  return answer(c, outcome, 201);
});

peopleRoutes.post('/admin/sites/:siteId/people/split', async (c) => {
  const { siteId, admin, by } = await siteOf(c);
  const input = await parseJson(c.req.raw, splitInputSchema, numericIdsAsText);
  const who = { by, at: nowMs(c.env), note: input.note ?? null };
  const query =
    input.userId !== undefined
      ? { userId: input.userId }
      : { anonymousId: input.anonymousId as string };
  const outcome = await stateOf(c, siteId).split(siteId, query, who);
  // The severed links are counted, not listed: a device's links are every event it sent while
  // logged in. The action itself keeps them (explain).
  await audit(c, admin, siteId, who.at, outcome, (value) => ({
    action: 'person.split',
    detail: { actionId: value.actionId, ...query, severed: value.severed, note: who.note },
  }));
  return answer(c, outcome, 201);
});

peopleRoutes.delete('/admin/sites/:siteId/people/actions/:actionId', async (c) => {
  const { siteId, admin, by } = await siteOf(c);
  const text = c.req.param('actionId');
  const actionId = Number(text);
  // Plain digits only: Number() would also read `1e3`, `0x10` and ` 1` as integers.
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(actionId) || actionId < 1) {
    throw new ApiError(400, 'invalid_action_id', 'action ids are positive integers in digits');
  }
  const at = nowMs(c.env);
  const outcome = await stateOf(c, siteId).revert(siteId, actionId, { by, at, note: null });
  await audit(c, admin, siteId, at, outcome, (value) => ({
    action: 'person.revert',
    detail: { actionId: value.reverted, kind: value.kind, ...value.ids },
  }));
  return answer(c, outcome);
});
