/**
 * The rollup log through the real site object: ingest, merges, splits, a goal edit
 * while ingest continues, and rollup reports between writes. After each step the rollup report
 * (threshold 0) must equal the per-person report, and the folded rollups a rebuild from rows.
 */
import {
  createExecutionContext,
  env,
  evictDurableObject,
  runInDurableObject,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import worker from '../../src/index';
import { foldLogStatements, rebuildRollups } from '../../src/funnel/rollups';
import {
  ADMIN,
  identify,
  importBatch,
  rollupTables,
  seedSite,
  settle,
  track,
  waitReady,
  type TestSite,
} from './helpers';
import { peopleAction, revertAction } from './identity-helpers';

const at = (day: number, minute: number) =>
  new Date(Date.UTC(2025, 2, 3 + day, 10, minute)).toISOString();

/** The site's rollup log rows (one per write that changed a row, until a fold). */
async function logRows(siteId: string): Promise<number | undefined> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM rollup_log WHERE site_id = ?')
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n;
}

async function get(site: TestSite, threshold: string) {
  const url =
    `https://goalstep.test/r/${site.shareToken}/${site.goalId}` +
    '?from=2025-03-01&to=2025-03-12&format=json&breakdown=device';
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(url, { headers: { ...ADMIN, 'Cache-Control': 'no-cache' } }),
    { ...env, ROLLUP_MIN_PEOPLE: threshold },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown> & {
    source: string;
    version: number;
    steps: Array<{ count: number }>;
  };
}

const logged: Record<string, number> = {};

async function check(site: TestSite, label: string) {
  await settle(site);
  const log = await env.DB.prepare('SELECT COUNT(*) AS n FROM rollup_log WHERE site_id = ?')
    .bind(site.siteId)
    .first<{ n: number }>();
  logged[label] = log?.n ?? -1;
  const fromRollups = await get(site, '0');
  const perPerson = await get(site, '100000000');
  expect(fromRollups.source, label).toBe('rollup');
  expect(perPerson.source, label).toBe('progress');
  const numbers = (r: typeof fromRollups) => ({
    version: r.version,
    counts: r.steps.map((s) => s.count),
    entered: r.entered,
    completed: r.completed,
    groups: (
      r.breakdown as { groups: Array<{ value: string; entered: number }> } | null
    )?.groups.map((g) => [g.value, g.entered]),
  });
  expect(numbers(fromRollups), label).toEqual(numbers(perPerson));
  // The folded rollups of every version equal a rebuild from the rows.
  await env.DB.batch(foldLogStatements(env.DB, site.siteId));
  const versions = await env.DB.prepare(
    'SELECT goal_id AS id, version FROM rollup_versions WHERE site_id = ?',
  )
    .bind(site.siteId)
    .all<{ id: string; version: number }>();
  const folded = await rollupTables(site.siteId);
  await rebuildRollups(env.DB, site.siteId, versions.results, 0);
  expect(await rollupTables(site.siteId), label).toEqual(folded);
  return fromRollups;
}

it('rollup reports equal per-person ones through merges, splits and an edit', async () => {
  const site = await seedSite('rl-stack', ['a', 'b']);
  await waitReady(site.siteId, site.goalId, 1);
  const first = [];
  for (let p = 0; p < 12; p += 1) {
    first.push(track('a', { anonymousId: `d${p}` }, `a-${p}`, at(p % 4, p)));
    if (p % 3 === 0) first.push(track('b', { userId: `u${p}` }, `b-${p}`, at(p % 4, p + 5)));
  }
  await importBatch(site, first);
  await check(site, 'ingest');

  // Two writes, then a report; a report between writes.
  await importBatch(site, [track('a', { anonymousId: 'd20' }, 'a-20', at(1, 1))]);
  await importBatch(site, [track('b', { anonymousId: 'd20' }, 'b-20', at(1, 3))]);
  await check(site, 'two writes');

  // Merges: devices linked to users (their b events join their a events).
  await importBatch(
    site,
    [0, 3, 6, 9].map((p) => identify(`d${p}`, `u${p}`, `i-${p}`, at(p % 4, p + 1))),
  );
  await check(site, 'identify merges');
  const merge = await peopleAction(site, 'merge', { userIds: ['u0', 'u3'] });
  expect(merge.status).toBe(201);
  await check(site, 'admin merge');
  const split = await peopleAction(site, 'split', { anonymousId: 'd6' });
  expect(split.status).toBe(201);
  await check(site, 'split');
  const { actionId } = (await merge.json()) as { actionId: number };
  expect((await revertAction(site, actionId)).status).toBe(200);
  await check(site, 'revert');

  // A goal edit (new version) while ingest continues.
  const edit = SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/goals/goal`, {
    method: 'PUT',
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      name: 'Test goal',
      window: '1d',
      steps: [{ event: 'a' }, { event: 'b' }],
    }),
  });
  const during = importBatch(site, [
    track('a', { anonymousId: 'd30' }, 'a-30', at(2, 30)),
    track('b', { anonymousId: 'd30' }, 'b-30', at(2, 40)),
    track('b', { anonymousId: 'd1' }, 'b-1', at(1, 50)),
  ]);
  expect((await edit).ok).toBe(true);
  await during;
  await waitReady(site.siteId, site.goalId, 2);
  await importBatch(site, [track('b', { anonymousId: 'd2' }, 'b-2', at(2, 20))]);
  const last = await check(site, 'edit');
  expect(last.version).toBe(2);
  console.log(JSON.stringify({ logRowsBeforeReport: logged }));
}, 60_000);

it('folds the log once 2,000 entries were logged since the last fold, in the hour', async () => {
  const site = await seedSite('rl-size-fold', ['a', 'b']);
  await waitReady(site.siteId, site.goalId, 1);
  // Batches of 500 new people, one flush each (settled in turn), all within seconds: each logs
  // one row of 500 entries (each person enters in an hour of their own, so no two rows log
  // alike). No flush folds until one finds 2,000 entries logged since the last fold (a fresh
  // object's first write does not fold either): the fifth folds the log with its own row.
  const batch = async (k: number) => {
    const events = Array.from({ length: 500 }, (_, i) =>
      track(
        'a',
        { anonymousId: `f${k}-${i}` },
        `f${k}-${i}`,
        new Date(Date.UTC(2025, 2, 3, 10) - i * 3_600_000).toISOString(),
      ),
    );
    expect((await importBatch(site, events)).status).toBe(200);
    await settle(site);
    return logRows(site.siteId);
  };
  const after = [];
  for (let k = 0; k < 6; k += 1) after.push(await batch(k));
  expect(after).toEqual([1, 2, 3, 4, 0, 1]);
});

it('counts entries, not rows: bursts of rows that log alike wait for the hour', async () => {
  const site = await seedSite('rl-alike-fold', ['a', 'b']);
  await waitReady(site.siteId, site.goalId, 1);
  // Six bursts of 500 new people entering in one hour from one device: each burst logs one
  // entry counting its 500 rows, so 3,000 rows written leave six entries, and nothing folds.
  const after = [];
  for (let k = 0; k < 6; k += 1) {
    const events = Array.from({ length: 500 }, (_, i) =>
      track('a', { anonymousId: `s${k}-${i}` }, `s${k}-${i}`, '2025-03-03T10:00:00Z'),
    );
    expect((await importBatch(site, events)).status).toBe(200);
    await settle(site);
    after.push(await logRows(site.siteId));
  }
  expect(after).toEqual([1, 2, 3, 4, 5, 6]);
}, 60_000);

it('folds an hour after the first write since the last fold, across evictions', async () => {
  const site = await seedSite('rl-time-fold', ['a', 'b']);
  await waitReady(site.siteId, site.goalId, 1);
  const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName(site.siteId));
  const due = () =>
    runInDurableObject(stub, (_instance, state) => {
      const [row] = state.storage.sql
        .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'fold_due'")
        .toArray();
      return row ? Number(row.value) : null;
    });
  const send = async (id: string) => {
    const before = Date.now();
    expect((await importBatch(site, [track('a', { anonymousId: id }, id, at(1, 0))])).ok).toBe(
      true,
    );
    await settle(site);
    return before;
  };
  // A fresh object does not fold on its first write: it records the fold an hour on.
  const first = await send('t1');
  expect(await logRows(site.siteId)).toBe(1);
  const recorded = await due();
  expect(recorded).toBeGreaterThanOrEqual(first + 3_600_000);
  expect(recorded).toBeLessThanOrEqual(Date.now() + 3_600_000);
  // A later write and a new instance keep that time, not a new one of their own.
  await evictDurableObject(stub);
  await send('t2');
  expect(await logRows(site.siteId)).toBe(2);
  expect(await due()).toBe(recorded);
  // Once it has passed (set back here, as an hour going by would), the next write folds the
  // log, its own row included, and nothing waits for a fold until the write after it.
  await evictDurableObject(stub);
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'fold_due'", String(Date.now()));
  });
  await evictDurableObject(stub);
  await send('t3');
  expect(await logRows(site.siteId)).toBe(0);
  expect(await due()).toBeNull();
  await send('t4');
  expect(await logRows(site.siteId)).toBe(1);
  expect(await due()).toBeGreaterThan(Date.now());
  // The folded rollups and the one logged row together are what a rebuild from rows gives.
  await env.DB.batch(foldLogStatements(env.DB, site.siteId));
  const folded = await rollupTables(site.siteId);
  await rebuildRollups(env.DB, site.siteId, [{ id: site.goalId, version: 1 }], Date.now());
  expect(await rollupTables(site.siteId)).toEqual(folded);
});
