/**
 * Rollups against the per-person path, on generated people in the real local D1: maintenance
 * keeps them equal to a rebuild from the rows (replays included), and a report from them equals
 * the per-person report (threshold 0) over many ranges, time zones (one with DST) and `now`s,
 * times within the histogram's documented error. The per-person path is the reference: its own
 * oracle tests (funnel-oracle, replay-oracle) check it against DuckDB.
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../src/index';
import { DURATION_RELATIVE_ERROR, durationBucket, HOUR_MS } from '../../src/funnel/attempt-facts';
import { toEngineGoal, type Goal, type GoalDefinition } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { writeProgress, type PersonProgress } from '../../src/funnel/progress-store';
import { erasePersonStatements, foldLogStatements, rebuildRollups } from '../../src/funnel/rollups';
import type { Segment } from '../../src/funnel/segment';
import { buildReport, type FunnelReport, type ReportView } from '../../src/report/build-report';
import { queryCountedAttempts } from '../../src/report/funnel-query';
import { resolveRange } from '../../src/report/range';
import { queryRollupReport, rollupServes } from '../../src/report/rollup-report';
import { histogramStats } from '../../src/report/rollup-tally';
import { seededRandom } from '../../scripts/lib/random.mjs';
import { faultyDb } from './faults';
import { ADMIN, importBatch, rollupTables, seedSite, settle, track, waitReady } from './helpers';

const START = Date.UTC(2025, 2, 3);
const SPAN = 12 * 86_400_000;
const pick = <T>(next: () => number, list: readonly T[]) =>
  list[Math.floor(next() * list.length)] as T;

type Event = Parameters<typeof computeAttempts>[0][number] & { segment: Segment };

function segment(next: () => number): Segment {
  return {
    utmSource: pick(next, [null, 'google', 'news', 'fb']),
    utmMedium: null,
    // A value that sorts before every letter, and the text '(none)': neither is "no value".
    utmCampaign: pick(next, [null, 'spring', '!sale', '(none)']),
    referrerDomain: null,
    device: pick(next, ['desktop', 'mobile', null]),
    browser: 'Chrome',
    os: null,
    country: pick(next, ['US', 'DE', 'FR', '(none)', null]),
  };
}

/** A few events for one person, spread over days, in the names the goals use. */
function personEvents(next: () => number, person: string, round: number): Event[] {
  const events: Event[] = [];
  let t = START + Math.floor(next() * SPAN);
  const count = 1 + Math.floor(next() * 6);
  for (let i = 0; i < count; i += 1) {
    const name = pick(next, ['a', 'a', 'b', 'c', 'd', 'x']);
    events.push({
      messageId: `${person}-${round}-${i}`,
      ts: t,
      type: 'track',
      event: name,
      properties: next() < 0.5 ? { amount: Math.round(next() * 10_000) / 100 } : {},
      segment: segment(next),
    });
    // Mostly minutes apart, sometimes hours or a day: windows and step windows both bite.
    t += Math.floor(next() < 0.7 ? next() * 1_800_000 : next() * 2 * 86_400_000);
  }
  return events;
}

function progress(goal: Goal, person: string, events: Event[]): PersonProgress {
  const attempts = computeAttempts(
    [...events].sort((a, b) => a.ts - b.ts || (a.messageId < b.messageId ? -1 : 1)),
    goal,
  ).map((attempt) => ({ ...attempt, segment: (attempt.entry as Event).segment }));
  const map: PersonProgress['attempts'] = new Map();
  if (attempts.length > 0) map.set(`${goal.id}#${goal.version}`, attempts);
  return { personId: person, attempts: map };
}

async function logRows(siteId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM rollup_log WHERE site_id = ?')
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n ?? -1;
}

/** The site's rollups once its log is folded (what every reader of them sees). */
async function snapshot(siteId: string): Promise<unknown[]> {
  await env.DB.batch(foldLogStatements(env.DB, siteId));
  expect(await logRows(siteId)).toBe(0);
  return rollupTables(siteId);
}

const GOALS: Array<{ name: string; definition: GoalDefinition }> = [
  {
    name: 'four steps with values',
    definition: {
      steps: [{ event: 'a' }, { event: 'b' }, { event: 'c' }, { event: 'd' }],
      window: '2d',
      mode: 'ordered',
      value: { property: 'amount' },
    },
  },
  {
    name: 'optional step and a step window',
    definition: {
      steps: [{ event: 'a' }, { event: 'b', optional: true }, { event: 'c', window: '3h' }],
      window: '30h',
      mode: 'ordered',
    },
  },
];

/** A report's numbers with every time statistic taken out (compared separately). */
function withoutTimes(report: FunnelReport): unknown {
  const strip = (summary: { steps: FunnelReport['steps'] }) => ({
    ...summary,
    steps: summary.steps.map((s) => ({
      ...s,
      medianSecondsFromPrevious: undefined,
      secondsFromPrevious: undefined,
    })),
  });
  return {
    ...strip(report),
    source: undefined,
    breakdown: report.breakdown && {
      ...report.breakdown,
      groups: report.breakdown.groups.map(strip),
    },
  };
}

function expectTimesClose(rollup: FunnelReport, exact: FunnelReport): void {
  const summaries = [rollup, ...(rollup.breakdown?.groups ?? [])];
  const references = [exact, ...(exact.breakdown?.groups ?? [])];
  summaries.forEach((summary, g) => {
    summary.steps.forEach((step, k) => {
      const want = references[g]?.steps[k]?.secondsFromPrevious;
      for (const key of ['median', 'p90', 'mean', 'min', 'max'] as const) {
        const got = step.secondsFromPrevious[key];
        const expected = want?.[key] ?? null;
        if (expected === null) {
          expect(got).toBeNull();
          continue;
        }
        // Relative error of the buckets, plus the rounding of each side to whole milliseconds.
        expect(Math.abs((got as number) - expected)).toBeLessThanOrEqual(
          expected * DURATION_RELATIVE_ERROR + 0.002,
        );
      }
    });
  });
}

describe.each(GOALS)('rollups of a goal with $name', ({ name, definition }) => {
  const siteId = `rollup-${name.replace(/\W+/g, '-')}`;
  const goal = toEngineGoal({ id: 'g', version: 1, name }, definition);
  const next = seededRandom(name.length * 7919);
  const people = new Map<string, Event[]>();

  beforeAll(async () => {
    for (let p = 0; p < 300; p += 1) people.set(`a:p${p}`, personEvents(next, `p${p}`, 0));
    await writeProgress(
      env.DB,
      siteId,
      [goal],
      [...people].map(([person, events]) => progress(goal, person, events)),
      { fold: true },
    );
  });

  it('keeps rollups equal to a rebuild from the rows; a replayed write is a no-op', async () => {
    for (let round = 1; round <= 3; round += 1) {
      // Some people gain events (new attempts, further steps), a few lose all of theirs.
      const changed: PersonProgress[] = [];
      for (const [person, events] of people) {
        const roll = next();
        if (roll < 0.25) events.push(...personEvents(next, person, round));
        else if (roll < 0.3) events.length = 0;
        else continue;
        changed.push(progress(goal, person, events));
      }
      // Round 2 folds in the write's own batch, as the site object does once a minute; the
      // others leave one log row for the snapshot's fold.
      await writeProgress(env.DB, siteId, [goal], changed, { fold: round === 2 });
      expect(await logRows(siteId)).toBe(round === 2 ? 0 : 1);
      const once = await snapshot(siteId);
      // Nothing changed: nothing logged, rollups unchanged.
      await writeProgress(env.DB, siteId, [goal], changed);
      expect(await logRows(siteId)).toBe(0);
      expect(await snapshot(siteId)).toEqual(once);
    }
    // An erasure while the log holds changes, the erased person's among them.
    const someone = [...people].slice(0, 20);
    for (const [, list] of someone) list.push(...personEvents(next, 'late', 4));
    const [erased, events] = someone.find(([, list]) => list.some((e) => e.event === 'a')) ?? [];
    await writeProgress(
      env.DB,
      siteId,
      [goal],
      someone.map(([person, list]) => progress(goal, person, list)),
    );
    expect(await logRows(siteId)).toBe(1);
    await env.DB.batch(erasePersonStatements(env.DB, siteId, erased as string));
    (events as Event[]).length = 0;
    const maintained = await snapshot(siteId);
    await rebuildRollups(env.DB, siteId, [{ id: goal.id, version: goal.version }], 0);
    expect(await snapshot(siteId)).toEqual(maintained);
    expect((maintained[0] as unknown[]).length).toBeGreaterThan(100);
    // A breakdown dim keeps rows for its values only, and for every one of them; "no value"
    // is left to the report to derive (the people here have no utm_source about a quarter of
    // the time, and no country a fifth).
    for (const table of maintained as Array<Array<{ dim: string; value: string }>>) {
      expect(table.filter((r) => r.dim !== '' && r.value === '')).toEqual([]);
      const values = (dim: string) =>
        new Set(table.filter((r) => r.dim === dim).map((r) => r.value));
      expect(values('utm_source')).toEqual(new Set(['google', 'news', 'fb']));
      expect(values('country')).toEqual(new Set(['US', 'DE', 'FR', '(none)']));
    }
  });

  it('reports the same numbers from rollups as from the per-person path', async () => {
    const zones = ['UTC', 'America/New_York', 'Europe/Berlin', 'Asia/Tokyo'];
    let compared = 0;
    let exactReads = 0;
    // Breakdowns whose "no value" group is shown, and whose "no value" is inside `other`.
    let noneShown = 0;
    let noneInOther = 0;
    for (let i = 0; i < 40; i += 1) {
      const tz = pick(next, zones);
      const day = (offset: number) => new Date(START + offset * 86_400_000).toISOString();
      const fromDay = Math.floor(next() * 12) - 1;
      const query =
        next() < 0.7
          ? {
              from: day(fromDay).slice(0, 10),
              to: day(fromDay + 1 + Math.floor(next() * 12)).slice(0, 10),
              tz,
            }
          : {
              from: day(fromDay).slice(0, 13) + ':00Z',
              to:
                new Date(START + fromDay * 86_400_000 + (1 + Math.floor(next() * 90)) * HOUR_MS)
                  .toISOString()
                  .slice(0, 13) + ':00Z',
              tz,
            };
      // Now: inside the data (people still in progress, eligibility edges) or well after it.
      const now = START + Math.floor(next() * (SPAN + 4 * 86_400_000));
      const range = resolveRange(query, now);
      const view: ReportView = {
        mode: 'ordered',
        window: definition.window,
        // referrer_domain: nobody has one (only the no-value group); browser: everybody has.
        breakdown: pick(next, [
          null,
          'utm_source',
          'utm_campaign',
          'country',
          'device',
          'referrer_domain',
          'browser',
        ]),
        top: 1 + Math.floor(next() * 3),
        interval: next() < 0.5 ? 'day' : 'week',
        filters: [],
      };
      expect(rollupServes(goal, view, range)).toBe(true);
      const aggregated = await queryRollupReport(env.DB, {
        siteId,
        goal,
        range,
        view,
        now,
        minPeople: 0,
      });
      const rows = await queryCountedAttempts(env.DB, {
        siteId,
        goalId: goal.id,
        version: goal.version,
        steps: goal.steps.length,
        from: range.from,
        to: range.to,
        breakdown: view.breakdown,
        values: goal.value !== undefined,
      });
      const common = {
        goal: { ...goal, note: null },
        defined: { mode: 'ordered' as const, window: definition.window },
        view,
        latestVersion: 1,
        rebuilding: false,
        range,
        now,
      };
      const exact = buildReport({ ...common, rows, source: 'progress' });
      const fromRollup = buildReport({ ...common, rows: [], aggregated, source: 'rollup' });
      expect(aggregated, JSON.stringify(query)).not.toBeNull();
      expect(withoutTimes(fromRollup), JSON.stringify({ query, now, view })).toEqual(
        withoutTimes(exact),
      );
      expectTimesClose(fromRollup, exact);
      compared += exact.entered > 0 ? 1 : 0;
      const kinds = exact.breakdown?.groups.map((g) => g.kind) ?? [];
      noneShown += kinds.includes('none') ? 1 : 0;
      const key = view.breakdown;
      const people = key === null ? 0 : rows.filter((r) => r.segment[key] === null).length;
      noneInOther += kinds.includes('other') && !kinds.includes('none') && people > 0 ? 1 : 0;
      exactReads += exact.inProgress > 0 && now < range.to + goal.windowMs ? 1 : 0;
    }
    // The comparison ran over non-empty reports, several with people in progress.
    expect(compared).toBeGreaterThan(25);
    expect(exactReads).toBeGreaterThan(3);
    expect(noneShown).toBeGreaterThan(3);
    expect(noneInOther).toBeGreaterThan(1);
  });

  it('reads no "no value" rows that a fold of older code left behind', async () => {
    const now = START + SPAN + 5 * 86_400_000;
    const range = resolveRange(
      { from: new Date(START).toISOString().slice(0, 10), to: new Date(now).toISOString() },
      now,
    );
    const view = { breakdown: 'utm_source', top: 5, interval: 'day' as const };
    const report = () =>
      queryRollupReport(env.DB, { siteId, goal, range, view, now, minPeople: 0 });
    const before = await report();
    expect(before?.groups?.find((g) => g.kind === 'none')?.entered).toBeGreaterThan(10);
    const hour = START / HOUR_MS + 30;
    const stale = [
      env.DB.prepare(
        `INSERT INTO rollups (site_id, goal_id, version, dim, hour, prev_hour, next_hour,
           open_hour, value, n, c1) VALUES (?1, 'g', 1, 'utm_source', ?2, -1, 1000000000, -1,
           '', 50, 50)`,
      ).bind(siteId, hour),
      env.DB.prepare(
        `INSERT INTO rollup_durations (site_id, goal_id, version, dim, hour, prev_hour,
           next_hour, value, step, bucket, n) VALUES (?1, 'g', 1, 'utm_source', ?2, -1,
           1000000000, '', 2, 300, 50)`,
      ).bind(siteId, hour),
    ];
    await env.DB.batch(stale);
    try {
      expect(await report()).toEqual(before);
    } finally {
      await env.DB.prepare(`DELETE FROM rollups WHERE site_id = ?1 AND dim <> '' AND value = ''`)
        .bind(siteId)
        .run();
      await env.DB.prepare(
        `DELETE FROM rollup_durations WHERE site_id = ?1 AND dim <> '' AND value = ''`,
      )
        .bind(siteId)
        .run();
    }
  });
});

describe('time statistics from a histogram', () => {
  it('keeps min ≤ mean ≤ max when every duration falls in one bucket', () => {
    // Four durations of exactly 300 s: one bucket, whose value is within 0.99 % of 300 s but
    // below it; the mean is exact (the sum is kept).
    const bucket = durationBucket(300_000);
    const stats = histogramStats(new Map([[bucket, 4]]), 4 * 300_000, 4);
    expect(stats.mean).toBe(300);
    expect(stats.max).toBe(300);
    expect(stats.min as number).toBeLessThanOrEqual(300);
    for (const value of [stats.min, stats.median, stats.p90]) {
      expect(Math.abs((value as number) - 300)).toBeLessThanOrEqual(300 * DURATION_RELATIVE_ERROR);
    }
    // 60 s and 61 s: two buckets, the mean between them.
    const two = histogramStats(
      new Map([
        [durationBucket(60_000), 1],
        [durationBucket(61_000), 1],
      ]),
      121_000,
      2,
    );
    expect(two.min as number).toBeLessThanOrEqual(60.5);
    expect(two.max as number).toBeGreaterThanOrEqual(60.5);
    expect(Math.abs((two.min as number) - 60)).toBeLessThanOrEqual(60 * DURATION_RELATIVE_ERROR);
    expect(Math.abs((two.max as number) - 61)).toBeLessThanOrEqual(61 * DURATION_RELATIVE_ERROR);
  });
});

describe('time statistics from a histogram, against the durations themselves', () => {
  /** Linear-interpolation quantile of sorted durations (the per-person path's rule). */
  const quantile = (sorted: number[], q: number) => {
    const h = (sorted.length - 1) * q;
    const low = Math.floor(h);
    const a = sorted[low] as number;
    return a + (h - low) * ((sorted[Math.min(low + 1, sorted.length - 1)] as number) - a);
  };

  it('stays within 0.99 % of the exact statistics, in order (review)', () => {
    const next = seededRandom(12_345);
    const bad: unknown[] = [];
    for (let i = 0; i < 4000; i += 1) {
      // Zero, tiny, minutes, a day and a huge duration; spread by up to 3×, or all equal.
      const base = [0, 1, 7, 300_000, 86_400_000, 1.02 ** 500][i % 6] as number;
      const spread = i % 12 >= 6 ? 0 : i % 3;
      const durations = Array.from({ length: 1 + Math.floor(next() * 12) }, () =>
        Math.max(0, Math.round(base * (1 + next() * spread))),
      );
      const hist = new Map<number, number>();
      for (const d of durations)
        hist.set(durationBucket(d), (hist.get(durationBucket(d)) ?? 0) + 1);
      const sum = durations.reduce((a, b) => a + b, 0);
      const s = histogramStats(hist, sum, durations.length);
      const sorted = [...durations].sort((a, b) => a - b);
      const within = (got: number | null, want: number) =>
        got !== null && Math.abs(got * 1000 - want) <= want * DURATION_RELATIVE_ERROR + 0.5 + 1e-6;
      const [min, median, p90, mean, max] = [s.min, s.median, s.p90, s.mean, s.max].map(
        (v) => v ?? Number.NaN,
      ) as [number, number, number, number, number];
      const ok =
        within(median, quantile(sorted, 0.5)) &&
        within(p90, quantile(sorted, 0.9)) &&
        within(min, sorted[0] as number) &&
        within(max, sorted[sorted.length - 1] as number) &&
        Math.abs(mean - Math.round(sum / durations.length) / 1000) < 1e-9 &&
        min <= mean &&
        mean <= max &&
        min <= median &&
        median <= p90 &&
        p90 <= max;
      if (!ok && bad.length < 5) bad.push({ durations, s });
    }
    expect(bad).toEqual([]);
  });
});

describe('rollup eligibility', () => {
  it('leaves half-hour zones, property breakdowns and deduped values to people', () => {
    const goal = toEngineGoal(
      { id: 'g', version: 1, name: 'g' },
      { steps: [{ event: 'a' }, { event: 'b' }], window: '7d', mode: 'ordered' },
    );
    const view = { breakdown: null, filters: [] };
    const now = Date.UTC(2025, 3, 1);
    const kolkata = resolveRange({ from: '2025-03-01', to: '2025-03-02', tz: 'Asia/Kolkata' }, now);
    const utc = resolveRange({ from: '2025-03-01', to: '2025-03-02' }, now);
    expect(rollupServes(goal, view, kolkata)).toBe(false);
    expect(rollupServes(goal, view, utc)).toBe(true);
    expect(rollupServes(goal, { breakdown: 'property:plan', filters: [] }, utc)).toBe(false);
    expect(rollupServes(goal, { breakdown: 'constructor', filters: [] }, utc)).toBe(false);
    expect(rollupServes(goal, { breakdown: null, filters: [{ key: 'device' }] }, utc)).toBe(false);
    const deduped = { ...goal, value: { property: 'revenue', dedupeBy: 'order_id' } };
    expect(rollupServes(deduped, view, utc)).toBe(false);
  });
});

describe('report route', () => {
  it('erases a person whose rows are only in the log without leaving rollup rows', async () => {
    const goal = toEngineGoal({ id: 'g', version: 1, name: 'erase' }, GOALS[0]!.definition);
    const person = progress(goal, 'a:lone', personEvents(seededRandom(5), 'lone', 0));
    expect(person.attempts.size).toBe(1);
    // An erasure finds a person's rows through the site's goal versions.
    await env.DB.prepare(
      `INSERT INTO goal_versions (site_id, goal_id, version, name, definition, created_by,
         created_at) VALUES ('rollup-erase', 'g', 1, 'erase', '{}', 'test', 0)`,
    ).run();
    await writeProgress(env.DB, 'rollup-erase', [goal], [person]);
    expect(await logRows('rollup-erase')).toBe(1);
    await env.DB.batch(erasePersonStatements(env.DB, 'rollup-erase', 'a:lone'));
    // Taking the person out of rollups that do not hold them yet would leave their keys at -1,
    // and the fold would bring them to 0 and keep them.
    expect(await snapshot('rollup-erase')).toEqual([[], []]);
  });

  it('rebuilds a version with changes still in the log without counting them twice', async () => {
    const goal = toEngineGoal({ id: 'g', version: 1, name: 'rebuild' }, GOALS[0]!.definition);
    const person = progress(goal, 'a:lone', personEvents(seededRandom(5), 'lone', 0));
    await writeProgress(env.DB, 'rollup-rebuild', [goal], [person]);
    expect(await logRows('rollup-rebuild')).toBe(1);
    await rebuildRollups(env.DB, 'rollup-rebuild', [{ id: 'g', version: 1 }], 0);
    const rebuilt = await snapshot('rollup-rebuild');
    // A second rebuild, with nothing in the log, is the aggregate of the rows alone.
    await rebuildRollups(env.DB, 'rollup-rebuild', [{ id: 'g', version: 1 }], 0);
    expect(rebuilt).toEqual(await snapshot('rollup-rebuild'));
    expect((rebuilt[0] as unknown[]).length).toBeGreaterThan(0);
  });

  it('answers from rollups once the range holds the threshold of people, and says so', async () => {
    const site = await seedSite('rollup-route', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    const at = (minute: number) => new Date(Date.UTC(2025, 2, 3, 10, minute)).toISOString();
    await importBatch(site, [
      track('a', { anonymousId: 'r1' }, 'r1a', at(0)),
      track('b', { anonymousId: 'r1' }, 'r1b', at(3)),
      track('a', { anonymousId: 'r2' }, 'r2a', at(1)),
      track('a', { anonymousId: 'r2' }, 'r2a2', at(9)),
    ]);
    await settle(site);
    const url =
      `https://goalstep.test/r/${site.shareToken}/${site.goalId}` +
      '?from=2025-03-03&to=2025-03-04&format=json';
    const fetchAt = async (threshold: string, format = 'json') => {
      const ctx = createExecutionContext();
      const res = await worker.fetch(
        new Request(url.replace('format=json', `format=${format}`), {
          headers: { ...ADMIN, 'Cache-Control': 'no-cache' },
        }),
        { ...env, ROLLUP_MIN_PEOPLE: threshold },
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return res;
    };
    const get = async (threshold: string) =>
      (await (await fetchAt(threshold)).json()) as FunnelReport;

    const small = await get('3');
    const large = await get('2');
    expect([small.source, small.steps.map((s) => s.count)]).toEqual(['progress', [2, 1]]);
    expect([large.source, large.steps.map((s) => s.count)]).toEqual(['rollup', [2, 1]]);
    // 180 s exactly per person; from a histogram, within its documented relative error.
    const median = large.steps[1]?.medianSecondsFromPrevious as number;
    expect(Math.abs(median - 180)).toBeLessThanOrEqual(180 * DURATION_RELATIVE_ERROR + 0.001);
    expect(small.steps[1]?.medianSecondsFromPrevious).toBe(180);
    // The page says which data answered (review finding: it said "progress rows" for both).
    expect(await (await fetchAt('2', 'html')).text()).toContain('from hourly rollups');
    expect(await (await fetchAt('3', 'html')).text()).toContain('from progress rows');

    // The object folded its log in its first flush; the next write, within the minute, leaves
    // its change in the log, and the rollup report folds it before reading.
    await importBatch(site, [track('a', { anonymousId: 'r3' }, 'r3a', at(20))]);
    await settle(site);
    expect(await logRows(site.siteId)).toBe(1);
    const later = await get('2');
    expect([later.source, later.steps.map((s) => s.count)]).toEqual(['rollup', [3, 1]]);
    expect(await logRows(site.siteId)).toBe(0);
  });
});

describe('a rollup report under concurrent writes', () => {
  const definition: GoalDefinition = {
    steps: [{ event: 'a' }, { event: 'b' }],
    window: '1d',
    mode: 'ordered',
  };
  const goal = toEngineGoal({ id: 'g', version: 1, name: 'race' }, definition);
  const hour = START + 10 * HOUR_MS;
  const enter = (person: string, minute: number): PersonProgress =>
    progress(goal, person, [
      {
        messageId: `${person}-a`,
        ts: hour + minute * 60_000,
        type: 'track',
        event: 'a',
        properties: {},
        segment: segment(() => 0),
      },
    ]);
  const range = resolveRange({ from: '2025-03-03', to: '2025-03-05', tz: 'UTC' }, START + SPAN);
  const view: ReportView = {
    mode: 'ordered',
    window: definition.window,
    breakdown: null,
    top: 5,
    interval: 'day',
    filters: [],
  };
  /** Three people entered in one hour; the version's rollups built from them. */
  const seed = async (siteId: string) => {
    await writeProgress(
      env.DB,
      siteId,
      [goal],
      ['a:r1', 'a:r2', 'a:r3'].map((p, i) => enter(p, i)),
    );
    await rebuildRollups(env.DB, siteId, [{ id: 'g', version: 1 }], hour);
    return { siteId, goal, range, view, now: START + SPAN, minPeople: 0 };
  };
  /** The report, with `write` landing between its first round (batch 1) and its second. */
  const raced = (input: Awaited<ReturnType<typeof seed>>, write: () => Promise<unknown>) =>
    queryRollupReport(
      faultyDb(env.DB, { beforeBatch: (n) => (n === 2 ? write() : Promise.resolve()) }),
      input,
    );

  it('answers from one state when a write lands between its two rounds of reads', async () => {
    const input = await seed('rollup-race');
    // Two more people: each number must still come from one state, here the later one.
    const answer = await raced(input, () =>
      writeProgress(env.DB, input.siteId, [goal], [enter('a:r4', 5), enter('a:r5', 6)]),
    );
    const after = await queryRollupReport(env.DB, input);
    expect(after?.summary.steps[0]?.count).toBe(5);
    expect(answer).toEqual(after);
    expect(answer?.overTime.reduce((sum, b) => sum + b.entered, 0)).toBe(5);
  });

  it('a write that leaves every sum equal but moves a day still gives one state', async () => {
    const input = await seed('rollup-race-hour');
    // a:r1 now enters a day later: same value, same counts, another day of the range.
    const answer = await raced(input, () =>
      writeProgress(env.DB, input.siteId, [goal], [enter('a:r1', 24 * 60)]),
    );
    const after = await queryRollupReport(env.DB, input);
    expect(after?.overTime.map((b) => b.entered).filter((n) => n > 0)).toEqual([2, 1]);
    expect(answer).toEqual(after);
  });

  it('writes between every pair of rounds: three tries, then null, never more reads', async () => {
    const input = await seed('rollup-race-many');
    let batches = 0;
    let next = 10;
    const db = faultyDb(env.DB, {
      beforeBatch: async (n) => {
        batches = n;
        if (n % 2 === 0) {
          next += 1;
          await writeProgress(env.DB, input.siteId, [goal], [enter(`a:w${next}`, next)]);
        }
      },
    });
    expect(await queryRollupReport(db, input)).toBeNull();
    expect(batches).toBe(6);
    const settled = await queryRollupReport(env.DB, input);
    expect(settled?.summary.steps[0]?.count).toBe(6);
  });
});
