/**
 * Admin people actions against a reviewer's findings (docs/IDENTITY.md): a split that takes
 * effect once, splits decided by event time whatever the arrival order, and erasure that leaves
 * no merged id behind. Expected outcomes are worked out by hand from the rules.
 */
import { env, SELF } from 'cloudflare:test';
import { ADMIN, counts, identify, importBatch, report, seedSite, settle, track } from './helpers';
import { auditOf, explain, identityStats, peopleAction, revertAction } from './identity-helpers';

const DAY = ['2025-03-03', '2025-03-04'] as const;
const at = (hour: number, minute = 0) => new Date(Date.UTC(2025, 2, 3, hour, minute)).toISOString();

describe('device splits', () => {
  it('refuses a second split of a device whose links are already severed', async () => {
    const site = await seedSite('split-twice', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'ula' }, 'st-1', at(9)),
      identify('dq', 'ula', 'st-2', at(9, 1)),
      track('step_2', { anonymousId: 'dq' }, 'st-3', at(9, 2)),
    ]);
    await settle(site);

    const first = await peopleAction(site, 'split', { anonymousId: 'dq' });
    expect(first.status).toBe(201);
    const { actionId, severed } = (await first.json()) as { actionId: number; severed: number };
    expect(severed).toBe(1);
    const second = await peopleAction(site, 'split', { anonymousId: 'dq' });
    expect(second.status).toBe(409);
    expect(await second.json()).toMatchObject({ code: 'nothing_to_split' });

    // Reverting the one split that took effect puts the device back with ula.
    expect((await revertAction(site, actionId)).status).toBe(200);
    expect((await explain(site, { anonymousId: 'dq' })).person).toBe('u:ula');
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
  });
});

describe('splits decided by event time', () => {
  // identify dev→ivy at 09:00, track dev at 09:30, split dev; a track carrying both ids at
  // 08:00 arrives before or after the split. Its link is older than the split, so the split
  // severs it either way: dev's anonymous 09:30 event stays a:dev, the 08:00 event counts for
  // ivy (it carries her userId), and ivy alone entered the goal.
  const late = track('step_1', { anonymousId: 'dev', userId: 'ivy' }, 'lt-0', at(8));

  async function run(name: string, lateFirst: boolean) {
    const site = await seedSite(name, ['step_1', 'step_2']);
    await importBatch(site, [
      identify('dev', 'ivy', 'lt-1', at(9)),
      track('step_2', { anonymousId: 'dev' }, 'lt-2', at(9, 30)),
      ...(lateFirst ? [late] : []),
    ]);
    await settle(site);
    const split = await peopleAction(site, 'split', { anonymousId: 'dev' });
    expect(split.status).toBe(201);
    if (!lateFirst) {
      expect((await importBatch(site, [late])).status).toBe(200);
      await settle(site);
    }
    const device = await explain(site, { anonymousId: 'dev' });
    const ivy = await explain(site, { userId: 'ivy' });
    return {
      severed: ((await split.json()) as { severed: number }).severed,
      device: [device.person, device.events],
      ivy: [ivy.person, ivy.events, ivy.anonymousIds],
      report: counts(await report(site, ...DAY)),
      people: (await identityStats(site)).people,
    };
  }

  it('severs a link older than the split that arrives after it, as if before', async () => {
    const after = await run('late-after', false);
    const before = await run('late-before', true);
    expect(after.device).toEqual(['a:dev', 1]);
    expect(after.ivy).toEqual(['u:ivy', 2, []]);
    expect(after.report).toEqual([1, 0]);
    expect(after.people).toBe(2);
    expect({ ...before, severed: 0 }).toEqual({ ...after, severed: 0 });
    // Severed when the split was made: one link, or two when the late one was already in.
    expect([after.severed, before.severed]).toEqual([1, 2]);
  });
});

/** DELETE /admin/sites/{site}/people/{id}: the right-to-erasure call. */
async function erase(siteId: string, id: string) {
  const res = await SELF.fetch(`https://goalstep.test/admin/sites/${siteId}/people/${id}`, {
    method: 'DELETE',
    headers: ADMIN,
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { deleted: { events: number; attempts: number } };
}

describe('erasure and admin actions', () => {
  it('counts the progress rows an erasure removes, in its answer and its audit entry', async () => {
    const site = await seedSite('erase-count', ['step_1', 'step_2']);
    await importBatch(site, [
      identify('ora-phone', 'ora', 'ec-1', at(9)),
      track('step_1', { anonymousId: 'ora-phone' }, 'ec-2', at(9, 1)),
      track('step_2', { userId: 'ora' }, 'ec-3', at(9, 5)),
    ]);
    await settle(site);
    // One entry into the one goal: one progress row. The phone's link makes the erasure
    // re-resolve the graph, which recomputes (and so deletes) the row before D1 is asked.
    const { results } = await env.DB.prepare('SELECT person_id FROM attempts WHERE site_id = ?')
      .bind(site.siteId)
      .all<{ person_id: string }>();
    expect(results).toEqual([{ person_id: 'u:ora' }]);

    const { deleted } = await erase(site.siteId, 'ora');
    expect(deleted).toMatchObject({ events: 3, attempts: 1 });
    const entry = (await auditOf(site, 'person.erase'))[0];
    expect(entry?.detail).toMatchObject({ events: 3, attempts: 1 });
  });

  it('leaves no erased id in a merge, so new events of both users stay two people', async () => {
    const site = await seedSite('erase-merge', ['step_1', 'step_2']);
    await importBatch(site, [
      identify('d1', 'uma', 'em-1', at(9)),
      track('step_1', { anonymousId: 'd1' }, 'em-2', at(9, 1)),
      track('step_2', { userId: 'vic' }, 'em-3', at(9, 2)),
    ]);
    await settle(site);
    const merged = await peopleAction(site, 'merge', { userIds: ['uma', 'vic'] });
    expect(merged.status).toBe(201);
    const { actionId } = (await merged.json()) as { actionId: number };
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);

    // d1 is uma's device; uma and vic are one person, so both are erased.
    await erase(site.siteId, 'd1');
    await importBatch(site, [
      track('step_1', { userId: 'uma' }, 'em-4', at(10)),
      track('step_2', { userId: 'vic' }, 'em-5', at(10, 1)),
    ]);
    await settle(site);

    expect((await identityStats(site)).people).toBe(2);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    const uma = await explain(site, { userId: 'uma' });
    expect(uma.person).toBe('u:uma');
    expect(uma.userIds).toEqual(['uma']);
    expect(uma.merges).toEqual([]);
    // The action's record keeps no erased id: it no longer concerns uma or vic at all.
    expect(JSON.stringify(uma)).not.toContain('vic');
    expect((await explain(site, { userId: 'vic' })).actions.map((a) => a.id)).not.toContain(
      actionId,
    );
  });

  it('makes a merge with an erased side inert, even once its split is reverted', async () => {
    const site = await seedSite('erase-side', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'uma' }, 'es-1', at(9)),
      track('step_2', { userId: 'wes' }, 'es-2', at(9, 1)),
    ]);
    await settle(site);
    const merged = await peopleAction(site, 'merge', { userIds: ['uma', 'wes'] });
    const { actionId: mergeId } = (await merged.json()) as { actionId: number };
    const split = await peopleAction(site, 'split', { userId: 'wes' });
    const { actionId: splitId } = (await split.json()) as { actionId: number };

    // uma alone is erased (the split cut the merge); wes stays.
    expect((await erase(site.siteId, 'uma')).deleted.events).toBe(1);
    expect((await revertAction(site, splitId)).status).toBe(200);
    await importBatch(site, [track('step_1', { userId: 'uma' }, 'es-3', at(9))]);
    await settle(site);

    const wes = await explain(site, { userId: 'wes' });
    expect(wes.userIds).toEqual(['wes']);
    const record = wes.actions.find((a) => a.id === mergeId) as unknown as { body: unknown };
    expect(record.body).toEqual({ userIds: ['wes'], erased: true });
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
  });
});
