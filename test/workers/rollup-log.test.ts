/**
 * The rollup log (src/funnel/rollups.ts): cases where the log's rollups and the rows could
 * part (found in review).
 * Expected values come from the documented rule (docs/METRICS.md, "Kept equal to the rows"):
 * after a fold, the rollups equal a rebuild from the rows, and the rows are the last write's.
 */
import { env } from 'cloudflare:test';
import { toEngineGoal } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { progressRows, writeProgress, type PersonProgress } from '../../src/funnel/progress-store';
import {
  ATTEMPT_FIELDS,
  foldLogStatements,
  rebuildRollups,
  replaceRowsStatements,
} from '../../src/funnel/rollups';
import { segmentOf, type Segment } from '../../src/funnel/segment';
import { expectFoldEqualsRebuild, importBatch, rollupTables, seedSite, settle } from './helpers';

const SEGMENT: Segment = {
  utmSource: 'google',
  utmMedium: null,
  utmCampaign: null,
  referrerDomain: null,
  device: 'desktop',
  browser: 'Chrome',
  os: null,
  country: 'US',
};
const T0 = Date.UTC(2025, 2, 3, 10);
const goal = toEngineGoal(
  { id: 'g', version: 1, name: 'review' },
  { steps: [{ event: 'a' }, { event: 'b' }, { event: 'c' }], window: '7d', mode: 'ordered' },
);

type Event = Parameters<typeof computeAttempts>[0][number];

function progress(person: string, events: Event[]): PersonProgress {
  const attempts = computeAttempts(events, goal).map((a) => ({ ...a, segment: SEGMENT }));
  const map: PersonProgress['attempts'] = new Map();
  if (attempts.length > 0) map.set('g#1', attempts);
  return { personId: person, attempts: map };
}

const ev = (id: string, event: string, ts: number, properties: Event['properties'] = null) =>
  ({ messageId: id, ts, type: 'track', event, properties }) as Event;

describe('rollup log', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a write that logs nothing never applies an older log row numbered like it', async () => {
    const site = 'rl-seq';
    const a = ev('p-a', 'a', T0);
    const b = ev('p-b', 'b', T0 + 60_000);
    const c = ev('p-c', 'c', T0 + 120_000);
    await writeProgress(env.DB, site, [goal], [progress('a:p', [a])], { fold: true });
    // Instance 1 of the site object, its clock some ms ahead: P reaches step 2; not folded yet.
    const ahead = Date.now() + 86_400_000;
    vi.spyOn(Date, 'now').mockReturnValue(ahead);
    await writeProgress(env.DB, site, [goal], [progress('a:p', [a, b])]);
    // Instance 2 (a fresh isolate: the writer's sequence starts again), its clock 5 ms behind:
    // P reaches step 3, then a person with nothing to write (nothing logged) at the ms instance
    // 1 wrote at.
    vi.resetModules();
    const fresh = await import('../../src/funnel/progress-store');
    vi.spyOn(Date, 'now').mockReturnValue(ahead - 5);
    await fresh.writeProgress(env.DB, site, [goal], [progress('a:p', [a, b, c])]);
    vi.spyOn(Date, 'now').mockReturnValue(ahead);
    await fresh.writeProgress(env.DB, site, [goal], [progress('a:q', [])]);
    vi.restoreAllMocks();

    // P's row is the last write's: reached 3.
    const row = await env.DB.prepare(
      `SELECT reached, t3 FROM attempts WHERE site_id = ? AND person_id = 'a:p'`,
    )
      .bind(site)
      .all();
    expect(row.results).toEqual([{ reached: 3, t3: T0 + 120_000 }]);
    // And the folded rollups are those of the rows.
    await env.DB.batch(foldLogStatements(env.DB, site));
    const folded = await rollupTables(site);
    await rebuildRollups(env.DB, site, [{ id: 'g', version: 1 }], 0);
    expect(await rollupTables(site)).toEqual(folded);
  });

  it('fails a write numbered like a log row already there, changed or not', async () => {
    const site = 'rl-guard';
    const a = ev('g-a', 'a', T0);
    const b = ev('g-b', 'b', T0 + 60_000);
    await writeProgress(env.DB, site, [goal], [progress('a:p', [a])]);
    const { seq } = (await env.DB.prepare('SELECT seq FROM rollup_log WHERE site_id = ?')
      .bind(site)
      .first<{ seq: number }>()) as { seq: number };
    const rowsOf = (events: Event[]) =>
      progressRows(goal, 'a:p', progress('a:p', events).attempts.get('g#1') ?? []);
    const scope = [['g', 1, 'a:p'] as const];
    // Unchanged (nothing to log) and changed: both refused, and the row stays as it was.
    for (const events of [[a], [a, b]]) {
      await expect(
        env.DB.batch(replaceRowsStatements(env.DB, site, scope, rowsOf(events), seq)),
      ).rejects.toThrow(/UNIQUE/);
    }
    const row = await env.DB.prepare(
      `SELECT reached FROM attempts WHERE site_id = ? AND person_id = 'a:p'`,
    )
      .bind(site)
      .first();
    expect(row).toEqual({ reached: 1 });
  });

  it("a merge's log row stays within D1's 2 MB row limit when its parameters do", async () => {
    const site = 'rl-size';
    // One person, 450 attempts (an 'a' an hour), each entry with ~1,900 characters of
    // properties (ENTRY_PROPS_MAX is 2,000).
    const events: Event[] = [];
    for (let i = 0; i < 450; i += 1) {
      const props: Record<string, string> = {};
      for (let k = 0; k < 40; k += 1) props[`k${k}`] = `"v${i}"`.padEnd(30, 'x');
      events.push(ev(`m${i}`, 'a', T0 + i * 3_600_000, props));
    }
    const device = progress('a:dev', events);
    await writeProgress(env.DB, site, [goal], [device], { fold: true });
    // The device is merged into a user: the device's rows go, the user's come (one write).
    const user = progress('u:ann', events);
    const merge = [{ personId: 'a:dev', attempts: new Map() }, user];
    const rowsJson = JSON.stringify(progressRows(goal, 'u:ann', user.attempts.get('g#1') ?? []));
    await writeProgress(env.DB, site, [goal], merge);
    const log = await env.DB.prepare(
      'SELECT length(CAST(rows AS BLOB)) AS bytes FROM rollup_log WHERE site_id = ?',
    )
      .bind(site)
      .first<{ bytes: number }>();
    console.log(JSON.stringify({ rowsParamBytes: rowsJson.length, logRowBytes: log?.bytes }));
    expect(rowsJson.length).toBeLessThan(2_000_000);
    expect(log?.bytes).toBeLessThan(2_000_000);
  });
});

/** Where a field is in a log entry: after its count, in ATTEMPT_FIELDS order. */
const at = (field: (typeof ATTEMPT_FIELDS)[number]) => ATTEMPT_FIELDS.indexOf(field) + 1;

/** The entries of the site's log rows not yet folded. */
async function loggedEntries(site: string): Promise<unknown[][]> {
  const { results } = await env.DB.prepare('SELECT rows FROM rollup_log WHERE site_id = ?')
    .bind(site)
    .all<{ rows: string }>();
  return results.flatMap((r) => JSON.parse(r.rows) as unknown[][]);
}

/** Folds the site's log and checks the rollups equal a rebuild from the rows. */
const foldEqualsRebuild = (site: string) =>
  expectFoldEqualsRebuild(site, [{ id: 'g', version: 1 }]);

describe('rollup log entries', () => {
  it('logs nothing for a replayed write whatever its texts hold, each change once', async () => {
    const site = 'rl-texts';
    // Texts SQLite and JavaScript could spell differently in JSON: quotes, backslashes, control
    // characters, non-ASCII, emoji, U+2028, and numbers of every size the rows hold.
    const odd = 'q"\\b\n\t\u0001\u007f é ✓ 😀 \u2028 </script>';
    const segment: Segment = { ...SEGMENT, utmCampaign: odd, referrerDomain: 'x.com' };
    const people: PersonProgress[] = [0, 1, 2].map((i) => {
      const events = [
        ev(`t-${i}-a`, 'a', T0 + i, { [odd]: odd, n: 2 ** 53 - 1, f: 0.1 + 0.2, neg: -7 }),
        ev(`t-${i}-b`, 'b', T0 + i + 90_061_001),
      ];
      const attempts = computeAttempts(events, goal).map((a) => ({ ...a, segment }));
      return { personId: `a:${odd}${i}`, attempts: new Map([['g#1', attempts]]) };
    });
    await writeProgress(env.DB, site, [goal], people);
    expect(await loggedEntries(site)).toHaveLength(3);
    await env.DB.batch(foldLogStatements(env.DB, site));
    // The same rows again: each stored row reads back as the very row sent, so nothing changes.
    await writeProgress(env.DB, site, [goal], people);
    expect(await loggedEntries(site)).toHaveLength(0);
    // One person reaches step 3: their old row out (-1), their new row in (+1), nobody else.
    const moved = people[1] as PersonProgress;
    const events = [
      ev('t-1-a', 'a', T0 + 1, { [odd]: odd, n: 2 ** 53 - 1, f: 0.1 + 0.2, neg: -7 }),
      ev('t-1-b', 'b', T0 + 1 + 90_061_001),
      ev('t-1-c', 'c', T0 + 1 + 90_061_002),
    ];
    const attempts = computeAttempts(events, goal).map((a) => ({ ...a, segment }));
    await writeProgress(
      env.DB,
      site,
      [goal],
      [{ ...moved, attempts: new Map([['g#1', attempts]]) }],
    );
    // An entry holds no person (the fold does not read it): the old row's count -1, the new
    // row's +1, and they differ in the step reached.
    const entries = await loggedEntries(site);
    expect(entries.map((e) => [e[0], e[at('person_id')], e[at('t3')]]).sort()).toEqual([
      [-1, null, null],
      [1, null, T0 + 1 + 90_061_002],
    ]);
    await foldEqualsRebuild(site);
  });
});

describe('rollup log entries (review)', () => {
  // 199 ASCII characters, then an emoji: a cut at 200 UTF-16 units would keep half of it.
  const CUT_CAMPAIGN = `${'x'.repeat(199)}😀 spring`;

  it('cuts a segment value before an emoji, so a replayed write logs nothing', async () => {
    const site = 'rl-cut';
    const segment = segmentOf({ campaign: { name: CUT_CAMPAIGN } });
    expect(segment.utmCampaign).toBe('x'.repeat(199));
    const people: PersonProgress[] = ['a:p0', 'a:p1'].map((personId, i) => ({
      personId,
      attempts: new Map([
        [
          'g#1',
          computeAttempts([ev(`${i}a`, 'a', T0 + i), ev(`${i}b`, 'b', T0 + i + 60_000)], goal).map(
            (a) => ({ ...a, segment }),
          ),
        ],
      ]),
    }));
    await writeProgress(env.DB, site, [goal], people);
    expect(await loggedEntries(site)).toHaveLength(2);
    await env.DB.batch(foldLogStatements(env.DB, site));
    for (let i = 0; i < 3; i += 1) await writeProgress(env.DB, site, [goal], people);
    // Sign and person only: a lone surrogate in a failure's diff would break the test pool.
    expect((await loggedEntries(site)).map((e) => [e[0], e[3]])).toEqual([]);
    await foldEqualsRebuild(site);
  });

  it('through ingest: the cut value is stored whole, and a rewrite logs nothing', async () => {
    const site = await seedSite('rl-cut-ingest', ['a', 'b']);
    const at = (minute: number) => new Date(T0 + minute * 60_000).toISOString();
    const event = (id: string, who: string, name: string, minute: number, campaign: string) => ({
      type: 'track',
      event: name,
      anonymousId: who,
      messageId: id,
      timestamp: at(minute),
      context: { campaign: { name: campaign } },
    });
    expect(
      (
        await importBatch(site, [
          event('m1', 'dev-cut', 'a', 0, CUT_CAMPAIGN),
          event('m2', 'dev-plain', 'a', 0, 'plain'),
        ])
      ).ok,
    ).toBe(true);
    await settle(site);
    const stored = await env.DB.prepare(
      `SELECT person_id, hex(utm_campaign) AS hx FROM attempts WHERE site_id = ?
       ORDER BY person_id`,
    )
      .bind(site.siteId)
      .all<{ person_id: string; hx: string }>();
    // 199 × 'x' (78), and nothing of the emoji.
    expect(stored.results).toEqual([
      { person_id: 'a:dev-cut', hx: '78'.repeat(199) },
      { person_id: 'a:dev-plain', hx: '706C61696E' },
    ]);
    await env.DB.batch(foldLogStatements(env.DB, site.siteId));
    // An event that is no step, for each person: both are written again, neither row changes.
    expect(
      (
        await importBatch(site, [
          event('m3', 'dev-cut', 'zzz', 5, 'other'),
          event('m4', 'dev-plain', 'zzz', 5, 'other'),
        ])
      ).ok,
    ).toBe(true);
    await settle(site);
    expect((await loggedEntries(site.siteId)).map((e) => [e[0], e[3]])).toEqual([]);
  });

  it('drops the half emoji of a segment kept from before the whole-character cut', async () => {
    // An event taken before the fix keeps its segment as cut then: 199 × 'x' and half an emoji.
    const site = 'rl-old-cut';
    const old = { ...segmentOf(null), utmCampaign: `${'x'.repeat(199)}\uD83D` };
    const current = segmentOf({ campaign: { name: CUT_CAMPAIGN } });
    const personWith = (id: string, i: number, segment: Segment): PersonProgress => ({
      personId: id,
      attempts: new Map([
        [
          'g#1',
          computeAttempts(
            [ev(`${id}a`, 'a', T0 + i), ev(`${id}b`, 'b', T0 + i + 60_000)],
            goal,
          ).map((a) => ({ ...a, segment })),
        ],
      ]),
    });
    const people = [personWith('a:old', 0, old), personWith('a:new', 1, current)];
    await writeProgress(env.DB, site, [goal], people, { fold: true });
    // Rewritten unchanged: nothing logged (sign and person only in a failure's diff).
    await writeProgress(env.DB, site, [goal], people);
    expect((await loggedEntries(site)).map((e) => [e[0], e[3]])).toEqual([]);
    // Both people are in one campaign group: 199 × 'x', nothing of the emoji.
    const { results } = await env.DB.prepare(
      `SELECT hex(value) AS v, SUM(n) AS n FROM rollups WHERE site_id = ? AND dim = 'utm_campaign'
       GROUP BY v`,
    )
      .bind(site)
      .all();
    expect(results).toEqual([{ v: '78'.repeat(199), n: 2 }]);
    await foldEqualsRebuild(site);
  });

  it('logs a change once when the scope and the rows name a person twice', async () => {
    const site = 'rl-dup';
    const rowsOf = (events: Event[]) =>
      progressRows(
        goal,
        'a:d',
        computeAttempts(events, goal).map((a) => ({ ...a, segment: segmentOf(null) })),
      );
    const a = ev('d-a', 'a', T0);
    const b = ev('d-b', 'b', T0 + 60_000);
    await env.DB.batch(replaceRowsStatements(env.DB, site, [['g', 1, 'a:d']], rowsOf([a])));
    await env.DB.batch(foldLogStatements(env.DB, site));
    const scope = [['g', 1, 'a:d'] as const, ['g', 1, 'a:d'] as const];
    const rows = rowsOf([a, b]);
    await env.DB.batch(replaceRowsStatements(env.DB, site, scope, [...rows, ...rows]));
    // Once each: the old row's count -1, the new row's +1 (it reached step 2).
    expect((await loggedEntries(site)).map((e) => [e[0], e[at('t2')]]).sort()).toEqual([
      [-1, null],
      [1, T0 + 60_000],
    ]);
    await foldEqualsRebuild(site);
  });
});

describe('rollup log entries summed', () => {
  const HOUR = 3_600_000;

  it('logs the new one-step rows of an hour and a segment as one entry counting them', async () => {
    const site = 'rl-sum';
    const people = [
      // Five in T0's hour, two in the next, each with one step-1 event.
      ...[0, 1, 2, 3, 4].map((i) => progress(`a:h0-${i}`, [ev(`h0-${i}`, 'a', T0 + i * 60_000)])),
      ...[0, 1].map((i) => progress(`a:h1-${i}`, [ev(`h1-${i}`, 'a', T0 + HOUR + i * 60_000)])),
      // One that reached step 2: the fold takes its time from t1, so t1 stays exact.
      progress('a:two', [ev('two-a', 'a', T0 + 7_000), ev('two-b', 'b', T0 + 67_000)]),
    ];
    await writeProgress(env.DB, site, [goal], people);
    const entries = (await loggedEntries(site)).map((e) => [
      e[0],
      e[at('person_id')],
      e[at('t1')],
      e[at('t2')],
    ]);
    expect(entries.sort((x, y) => Number(x[2]) - Number(y[2]))).toEqual([
      [5, null, T0, null],
      [1, null, T0 + 7_000, T0 + 67_000],
      [2, null, T0 + HOUR, null],
    ]);
    // Every row is stored whole.
    const stored = await env.DB.prepare(
      'SELECT COUNT(*) AS n, COUNT(entry_props) AS props FROM attempts WHERE site_id = ?',
    )
      .bind(site)
      .first();
    expect(stored).toEqual({ n: 8, props: 0 });
    await foldEqualsRebuild(site);
  });

  it('counts rows that leave alike as one entry of their count, less than -1', async () => {
    const site = 'rl-sum-out';
    const one = (i: number) => [ev(`o-${i}-a`, 'a', T0 + i * 1_000)];
    await writeProgress(
      env.DB,
      site,
      [goal],
      [0, 1, 2].map((i) => progress(`a:o${i}`, one(i))),
      { fold: true },
    );
    // All three reach step 2: their one-step rows leave alike (-3), their new rows differ.
    const moved = [0, 1, 2].map((i) =>
      progress(`a:o${i}`, [...one(i), ev(`o-${i}-b`, 'b', T0 + i * 1_000 + 30_000)]),
    );
    await writeProgress(env.DB, site, [goal], moved);
    expect((await loggedEntries(site)).map((e) => e[0]).sort()).toEqual([-3, 1, 1, 1]);
    await foldEqualsRebuild(site);
  });

  it('logs nothing for a change the fold does not read, and still stores it', async () => {
    const site = 'rl-sum-zero';
    const before = [
      progress('a:props', [ev('p-a', 'a', T0 + 5 * 60_000, { plan: 'basic' })]),
      progress('a:moved', [ev('m-a', 'a', T0 + 10 * 60_000)]),
    ];
    await writeProgress(env.DB, site, [goal], before, { fold: true });
    // New entry properties; an entry time moved within its hour (a new key, the old one gone).
    const after = [
      progress('a:props', [ev('p-a', 'a', T0 + 5 * 60_000, { plan: 'pro' })]),
      progress('a:moved', [ev('m-b', 'a', T0 + 20 * 60_000)]),
    ];
    await writeProgress(env.DB, site, [goal], after);
    expect(await loggedEntries(site)).toEqual([]);
    const { results } = await env.DB.prepare(
      'SELECT person_id, t1, entry_props FROM attempts WHERE site_id = ? ORDER BY person_id',
    )
      .bind(site)
      .all();
    expect(results).toEqual([
      { person_id: 'a:moved', t1: T0 + 20 * 60_000, entry_props: null },
      { person_id: 'a:props', t1: T0 + 5 * 60_000, entry_props: '{"property:plan":"pro"}' },
    ]);
    await foldEqualsRebuild(site);
  });
});
