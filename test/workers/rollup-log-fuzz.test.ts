/**
 * The rollup log's summed entries (src/funnel/rollups.ts, `LOG_SQL`) under random writes, log
 * rows of the previous format, and erasures (from the session-10 review). Expected values: after
 * a fold, the rollups equal a rebuild from the rows (docs/METRICS.md, "Kept equal to the rows"),
 * and every stored attempt key is listed in its hour of `t1` (src/funnel/attempt-hours.ts). The
 * rows are computed by the pure engine; the rebuild is the independent aggregate.
 */
import { env } from 'cloudflare:test';
import { toEngineGoal, type GoalDefinition } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { progressRows, writeProgress, type PersonProgress } from '../../src/funnel/progress-store';
import {
  ATTEMPT_FIELDS,
  erasePersonStatements,
  replaceRowsStatements,
  type AttemptJsonRow,
} from '../../src/funnel/rollups';
import { type Segment } from '../../src/funnel/segment';
import { seededRandom } from '../../scripts/lib/random.mjs';
import { expectFoldEqualsRebuild } from './helpers';

type Event = Parameters<typeof computeAttempts>[0][number];
const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 2, 3, 10);

const GOALS = [
  toEngineGoal({ id: 'ga', version: 1, name: 'ordered' }, {
    steps: [{ event: 'a' }, { event: 'b', optional: true }, { event: 'c' }, { event: 'd' }],
    window: '2h',
    mode: 'ordered',
    value: { property: 'amt' },
  } as GoalDefinition),
  toEngineGoal({ id: 'gb', version: 1, name: 'any' }, {
    steps: [{ event: 'a' }, { event: 'c' }, { event: 'd' }],
    window: '90m',
    mode: 'any',
    value: { property: 'amt' },
  } as GoalDefinition),
];

const SEGMENTS: Segment[] = ['Chrome', 'Safari'].flatMap((browser) =>
  [null, 'spring'].map((utmCampaign) => ({
    utmSource: utmCampaign ? 'google' : null,
    utmMedium: null,
    utmCampaign,
    referrerDomain: null,
    device: 'desktop',
    browser,
    os: null,
    country: 'US',
  })),
);

function progressOf(person: string, events: Event[], segment: Segment): PersonProgress {
  const attempts: PersonProgress['attempts'] = new Map();
  for (const goal of GOALS) {
    const list = computeAttempts(events, goal).map((a) => ({ ...a, segment }));
    if (list.length > 0) attempts.set(`${goal.id}#${goal.version}`, list);
  }
  return { personId: person, attempts };
}

const foldEqualsRebuild = (site: string, label: string) =>
  expectFoldEqualsRebuild(
    site,
    GOALS.map((g) => ({ id: g.id, version: g.version })),
    label,
  );

/** Goal ga's counted attempts in the site's folded rollups (the total's `n`). */
async function entrantsOf(site: string): Promise<number | null> {
  const row = await env.DB.prepare(
    `SELECT SUM(n) AS n FROM rollups WHERE site_id = ? AND dim = '' AND goal_id = 'ga'`,
  )
    .bind(site)
    .first<{ n: number | null }>();
  return row?.n ?? null;
}

/** Stored attempt keys whose person is not listed in the hour of their t1. */
async function unlisted(site: string): Promise<unknown[]> {
  const { results } = await env.DB.prepare(
    `SELECT a.goal_id, a.person_id, a.t1 FROM attempts a WHERE a.site_id = ?1 AND NOT EXISTS (
       SELECT 1 FROM attempt_hours h, json_each(h.persons) j WHERE h.site_id = ?1
         AND h.goal_id = a.goal_id AND h.version = a.version
         AND h.hour = (a.t1 / ${HOUR}) * ${HOUR} AND j.value = a.person_id)`,
  )
    .bind(site)
    .all();
  return results;
}

describe('fold equals rebuild under random writes', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: re-entries, optional steps, any order, values, merges, moves`, async () => {
      const site = `rlf-fuzz-${seed}`;
      const r = seededRandom(seed);
      const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
      // Each person's events so far, and their segment.
      const people = new Map<string, { events: Event[]; segment: Segment }>();
      let msg = 0;
      for (let round = 0; round < 25; round += 1) {
        // One entry per person (the writer's contract): the last one wins.
        const batch = new Map<string, PersonProgress>();
        const push = (p: PersonProgress) => batch.set(p.personId, p);
        const n = 1 + Math.floor(r() * 12);
        for (let i = 0; i < n; i += 1) {
          const id = `a:p${Math.floor(r() * 20)}`;
          const state = people.get(id) ?? { events: [], segment: pick(SEGMENTS) };
          const kind = r();
          if (kind < 0.1 && state.events.length > 0) {
            // A merge: this person's rows go, a user's come with the same events.
            const user = `u:${id}-${round}`;
            people.delete(id);
            people.set(user, state);
            push({ personId: id, attempts: new Map() });
            push(progressOf(user, state.events, state.segment));
            continue;
          }
          if (kind < 0.2 && state.events.length > 0) {
            // A late event moves an existing one's time (possibly across an hour).
            const k = Math.floor(r() * state.events.length);
            const e = state.events[k] as Event;
            state.events[k] = { ...e, ts: e.ts + Math.floor((r() - 0.5) * 2 * HOUR) };
          } else {
            const events = 1 + Math.floor(r() * 3);
            for (let j = 0; j < events; j += 1) {
              const amt = r() < 0.5 ? null : pick([1, 2.5, 0.1 + 0.2, 1e-7, 3]);
              state.events.push({
                messageId: `m${(msg += 1)}`,
                ts: T0 + Math.floor(r() * 8 * HOUR),
                type: 'track',
                event: pick(['a', 'a', 'b', 'c', 'd', 'x']),
                properties: amt === null ? null : { amt },
              } as Event);
            }
          }
          if (r() < 0.05) state.segment = pick(SEGMENTS);
          people.set(id, state);
          push(progressOf(id, state.events, state.segment));
        }
        await writeProgress(env.DB, site, GOALS, [...batch.values()], { fold: r() < 0.2 });
        if (r() < 0.15) await foldEqualsRebuild(site, `seed ${seed} round ${round}`);
      }
      await foldEqualsRebuild(site, `seed ${seed} end`);
      expect(await unlisted(site)).toEqual([]);
    });
  }
});

/** A handmade row for goal ga (ATTEMPT_FIELDS order). */
function row(person: string, fields: Partial<Record<string, string | number | null>>) {
  const base: Record<string, string | number | null> = {
    goal_id: 'ga',
    version: 1,
    person_id: person,
    reached: 1,
    device: 'desktop',
    open_mask: 0,
    progress_mask: 0,
    done_mask: 0,
  };
  const all = { ...base, ...fields };
  return ATTEMPT_FIELDS.map((f) => all[f] ?? null) as AttemptJsonRow;
}

describe('erasure with an unfolded log of summed entries', () => {
  it('erasing one of many people who log alike leaves the rollups of the others', async () => {
    const site = 'rlf-erase';
    for (const g of GOALS) {
      await env.DB.prepare(
        `INSERT INTO goal_versions (site_id, goal_id, version, name, definition, created_by,
           created_at) VALUES (?, ?, 1, 'x', '{}', 'review', 0)`,
      )
        .bind(site, g.id)
        .run();
    }
    const seg = SEGMENTS[1] as Segment;
    const one = (id: string, ts: number) =>
      progressOf(id, [{ messageId: `${id}-a`, ts, type: 'track', event: 'a' } as Event], seg);
    // Five alike (one entry counting 5), then two of them reach step 3 (an entry of -2).
    await writeProgress(
      env.DB,
      site,
      GOALS,
      [0, 1, 2, 3, 4].map((i) => one(`a:e${i}`, T0 + i)),
    );
    const more = (id: string, ts: number) =>
      progressOf(
        id,
        [
          { messageId: `${id}-a`, ts, type: 'track', event: 'a' } as Event,
          { messageId: `${id}-c`, ts: ts + 60_000, type: 'track', event: 'c' } as Event,
        ],
        seg,
      );
    await writeProgress(env.DB, site, GOALS, [more('a:e0', T0), more('a:e1', T0 + 1)]);
    await env.DB.batch(erasePersonStatements(env.DB, site, 'a:e0'));
    await env.DB.batch(erasePersonStatements(env.DB, site, 'a:e2'));
    await foldEqualsRebuild(site, 'after erasures');
    expect(await entrantsOf(site)).toBe(3);
  });
});

describe('log rows of the previous format', () => {
  it('folds entries [±1, whole row] together with summed ones', async () => {
    const site = 'rlf-mixed';
    const seg = SEGMENTS[0] as Segment;
    const event = (id: string, name: string, ts: number) =>
      ({ messageId: id, ts, type: 'track', event: name }) as Event;
    const eventsOf = (i: number, reach: number) =>
      ['a', 'c', 'd'].slice(0, reach).map((name, k) => event(`${i}-${name}`, name, T0 + i + k));
    const rowsOf = (people: PersonProgress[]) =>
      people.flatMap((p) =>
        GOALS.flatMap((g) => progressRows(g, p.personId, p.attempts.get(`${g.id}#1`) ?? [])),
      );
    // The previous writer: six people's rows stored, and logged whole, one entry each (+1).
    const first = [0, 1, 2, 3, 4, 5].map((i) => progressOf(`a:x${i}`, eventsOf(i, 1), seg));
    const rows = rowsOf(first);
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO attempts (site_id, ${ATTEMPT_FIELDS.join(', ')})
         SELECT ?1, ${ATTEMPT_FIELDS.map((_, i) => `value ->> ${i}`).join(', ')}
         FROM json_each(?2)`,
      ).bind(site, JSON.stringify(rows)),
      env.DB.prepare('INSERT INTO rollup_log (site_id, seq, rows) VALUES (?1, 1, ?2)').bind(
        site,
        JSON.stringify(rows.map((row) => [1, ...row])),
      ),
    ]);
    // This writer moves four of them on (their old rows leave as summed entries) and adds two.
    const moved = [0, 1, 2, 3].map((i) => progressOf(`a:x${i}`, eventsOf(i, 2 + (i % 2)), seg));
    const added = [6, 7].map((i) => progressOf(`a:x${i}`, eventsOf(i, 1), seg));
    await writeProgress(env.DB, site, GOALS, [...moved, ...added]);
    await foldEqualsRebuild(site, 'mixed formats');
    // Eight people enter goal ga once each.
    expect(await entrantsOf(site)).toBe(8);
  });
});

describe('one attempt key', () => {
  it('refuses two different rows for one key in one write, and takes a row sent twice', () => {
    const person = progressOf(
      'a:k',
      [{ messageId: 'k-a', ts: T0, type: 'track', event: 'a' } as Event],
      SEGMENTS[0] as Segment,
    );
    const [row] = progressRows(GOALS[0]!, 'a:k', person.attempts.get('ga#1') ?? []);
    const other = [...(row as AttemptJsonRow)];
    other[ATTEMPT_FIELDS.indexOf('device')] = 'mobile';
    const scope = [['ga', 1, 'a:k'] as const];
    expect(() => replaceRowsStatements(env.DB, 'rlf-key', scope, [row!, other])).toThrow(
      /two different rows for one attempt key/,
    );
    expect(replaceRowsStatements(env.DB, 'rlf-key', scope, [row!, row!])).toHaveLength(4);
  });
});
