/**
 * The attempts' packed entry-time index (`attempt_hours`, migration 0014): a report's exact read
 * finds every person whose attempt starts in its range, once, through keys that move and a
 * rebuild's relisting in chunks. Expected people are worked out from the attempts written.
 */
import { env } from 'cloudflare:test';
import { RELIST_CHUNK } from '../../src/funnel/attempt-hours';
import { toEngineGoal } from '../../src/funnel/definition';
import { writeProgress } from '../../src/funnel/progress-store';
import { rebuildRollups } from '../../src/funnel/rollups';
import { queryCountedAttempts } from '../../src/report/funnel-query';
import { viewer } from './helpers';

const H = 3_600_000;
const T = Date.UTC(2025, 4, 5, 10);
const goal = toEngineGoal(
  { id: 'hours', version: 1, name: 'Hours' },
  { steps: [{ event: 'view' }, { event: 'buy' }], window: '7d', mode: 'ordered' },
);

const person = (id: string, times: number[]) => viewer(goal, id, times);

async function peopleIn(siteId: string, from: number, to: number): Promise<string[]> {
  const query = { siteId, goalId: 'hours', version: 1, steps: 2, from, to };
  return (await queryCountedAttempts(env.DB, query)).map((a) => String(a.personId)).sort();
}

describe('attempt_hours', () => {
  it('follows an attempt whose entry moves to an earlier hour', async () => {
    await writeProgress(env.DB, 'ah-move', [goal], [person('a:p', [T + H + 5])]);
    expect(await peopleIn('ah-move', T + H, T + 2 * H)).toEqual(['a:p']);
    // Recomputed with its one entry an hour earlier (its later view erased, an earlier one
    // kept): the old key goes, the new one is listed in hour T.
    await writeProgress(env.DB, 'ah-move', [goal], [person('a:p', [T + 5])]);
    expect(await peopleIn('ah-move', T, T + H)).toEqual(['a:p']);
    // Still listed in hour T + H, but no attempt starts there any more.
    expect(await peopleIn('ah-move', T + H, T + 2 * H)).toEqual([]);
  });

  it('relists a version in rows of at most RELIST_CHUNK people on a rebuild', async () => {
    const crowd = Array.from({ length: RELIST_CHUNK + 1 }, (_, i) =>
      person(`a:c${String(i).padStart(5, '0')}`, [T + i]),
    );
    await writeProgress(env.DB, 'ah-rebuild', [goal], [...crowd, person('a:late', [T + H])]);
    await rebuildRollups(env.DB, 'ah-rebuild', [{ id: 'hours', version: 1 }], Date.now());
    const { results } = await env.DB.prepare(
      `SELECT hour, seq, json_array_length(persons) AS n FROM attempt_hours
       WHERE site_id = 'ah-rebuild' ORDER BY hour, seq`,
    ).all();
    // Hour T: 2,000 people, then 1; hour T + H: 1. Nothing else (the writes' rows are replaced).
    expect(results).toEqual([
      { hour: T, seq: 0, n: RELIST_CHUNK },
      { hour: T, seq: 1, n: 1 },
      { hour: T + H, seq: 0, n: 1 },
    ]);
    expect(await peopleIn('ah-rebuild', T, T + H)).toHaveLength(RELIST_CHUNK + 1);
    expect(await peopleIn('ah-rebuild', T + H, T + 2 * H)).toEqual(['a:late']);
  });
});
