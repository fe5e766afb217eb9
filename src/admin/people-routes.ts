/**
 * Admin people endpoints (docs/IDENTITY.md): explain a person, merge two known users, split a
 * wrongly merged id back out, revert either, and the site's identity summary.
 */
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Env } from '../env';
import type { AdminOutcome } from '../identity/site-state-do';
import { nowMs } from '../lib/clock';
import { ApiError } from '../lib/http-error';
import { requireAdmin } from './admin-auth';
import { parseJson, requireSite, siteParam } from './admin-routes';

const idText = z.string().trim().min(1).max(200);

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

async function siteOf(c: AppContext): Promise<{ siteId: string; by: string }> {
  const siteId = siteParam(c.req.param('siteId') ?? '');
  const admin = await requireAdmin(c, siteId);
  await requireSite(c.env.DB, siteId);
  return { siteId, by: admin.name };
}

function answer<T>(c: AppContext, outcome: AdminOutcome<T>, status: 200 | 201 = 200) {
  if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
  return c.json(outcome.value as object, status);
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
  const { siteId, by } = await siteOf(c);
  const input = await parseJson(c.req.raw, mergeInputSchema);
  const who = { by, at: nowMs(c.env), note: input.note ?? null };
  return answer(c, await stateOf(c, siteId).merge(siteId, input.userIds, who), 201);
});

peopleRoutes.post('/admin/sites/:siteId/people/split', async (c) => {
  const { siteId, by } = await siteOf(c);
  const input = await parseJson(c.req.raw, splitInputSchema);
  const who = { by, at: nowMs(c.env), note: input.note ?? null };
  const query =
    input.userId !== undefined
      ? { userId: input.userId }
      : { anonymousId: input.anonymousId as string };
  return answer(c, await stateOf(c, siteId).split(siteId, query, who), 201);
});

peopleRoutes.delete('/admin/sites/:siteId/people/actions/:actionId', async (c) => {
  const { siteId, by } = await siteOf(c);
  const actionId = Number(c.req.param('actionId'));
  if (!Number.isSafeInteger(actionId) || actionId < 1) {
    throw new ApiError(400, 'invalid_action_id', 'action ids are positive integers');
  }
  return answer(
    c,
    await stateOf(c, siteId).revert(siteId, actionId, { by, at: nowMs(c.env), note: null }),
  );
});
