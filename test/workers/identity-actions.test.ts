/**
 * Admin people actions against a reviewer's findings (docs/IDENTITY.md): a split that takes
 * effect once, splits decided by event time whatever the arrival order, and erasure that leaves
 * no merged id behind. Expected outcomes are worked out by hand from the rules.
 */
import { env, SELF } from 'cloudflare:test';
import { ADMIN, counts, importBatch, report, seedSite, settle, track } from './helpers';
import { explain, identityStats, peopleAction, revertAction } from './identity-helpers';

const DAY = ['2025-03-03', '2025-03-04'] as const;
const at = (hour: number, minute = 0) => new Date(Date.UTC(2025, 2, 3, hour, minute)).toISOString();
const identify = (anonymousId: string, userId: string, messageId: string, timestamp: string) => ({
  type: 'identify',
  anonymousId,
  userId,
  messageId,
  timestamp,
});

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
