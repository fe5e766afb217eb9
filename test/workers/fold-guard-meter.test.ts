/**
 * The hourly rollup fold and its due time under evictions and failed writes, the payload guard's
 * key copy and surrogate shortcut against the copy it replaced, and the meter's rows written by
 * statement (a review's tests, session 8).
 */
import {
  env,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  SELF,
} from 'cloudflare:test';
import fc from 'fast-check';
import type { Env } from '../../src/env';
import { foldLogStatements, rebuildRollups } from '../../src/funnel/rollups';
import { guardPayload, wellFormed } from '../../src/ingest/guards';
import { meterEnv, readTally, resetTally } from '../../src/lib/meter';
import { faultyDb } from './faults';
import { peopleAction } from './identity-helpers';
import {
  ADMIN,
  expectFoldEqualsRebuild,
  importBatch,
  seedSite,
  settle,
  stateOf,
  track,
  waitReady,
  type TestSite,
} from './helpers';

const HOUR = 3_600_000;

async function logRows(siteId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM rollup_log WHERE site_id = ?')
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n ?? -1;
}

async function attemptRows(siteId: string): Promise<number> {
  const row = await env.DB.prepare('SELECT COUNT(*) AS n FROM attempts WHERE site_id = ?')
    .bind(siteId)
    .first<{ n: number }>();
  return row?.n ?? -1;
}

const foldDue = (siteId: string) =>
  runInDurableObject(stateOf(siteId), (_instance, state) => {
    const [row] = state.storage.sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'fold_due'")
      .toArray();
    return row ? Number(row.value) : null;
  });

/** The folded rollups equal a rebuild from the rows (the log folded first by both). */
const expectRollupsExact = (site: TestSite) =>
  expectFoldEqualsRebuild(site.siteId, [{ id: site.goalId, version: 1 }]);

/**
 * `n` new people, each entering in an hour of their own: their rows do not log alike, so a
 * burst logs `n` entries (rows that log alike are one entry, src/funnel/rollups.ts).
 */
const newPeople = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) =>
    track(
      'a',
      { anonymousId: `${prefix}-${i}` },
      `${prefix}-${i}`,
      new Date(Date.UTC(2025, 2, 3, 10) - i * 3_600_000).toISOString(),
    ),
  );

describe('rollup fold timing', () => {
  it('bounds the log by 2,000 entries under heavy ingest, across evictions', async () => {
    // docs/ARCHITECTURE.md: the object folds once about 2,000 entries were logged, which
    // "bounds the fold a report may have to do under heavy ingest". Bursts of 500 new people
    // (500 entries each), the object evicted between bursts (idle for a few minutes, a deploy):
    // the fifth burst finds 2,000 entries logged since the last fold and folds, so the log
    // never holds more than four bursts.
    const site = await seedSite('r8-evicted-bound', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    const after: number[] = [];
    for (let k = 0; k < 6; k += 1) {
      expect((await importBatch(site, newPeople(`e${k}`, 500))).status).toBe(200);
      await settle(site);
      after.push(await logRows(site.siteId));
      await evictDurableObject(stateOf(site.siteId));
    }
    expect(await attemptRows(site.siteId)).toBe(3_000);
    console.log(JSON.stringify({ logRowsAfterEachBurst: after }));
    expect(Math.max(...after)).toBeLessThanOrEqual(4);
  }, 60_000);

  it("keeps a chunk's people owed when recording the fold's due time fails", async () => {
    // runFlush: "a throw here must put the chunk back as dirty too (most marks live in memory
    // only)". `foldNow` writes `meta.fold_due` after the chunk left `dirty`, outside the try.
    const site = await seedSite('r8-due-throws', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    const stub = stateOf(site.siteId);
    await evictDurableObject(stub);
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec("DELETE FROM meta WHERE key = 'fold_due'");
      // A storage write failure, on this one row only.
      state.storage.sql.exec(`CREATE TRIGGER r8_fail BEFORE INSERT ON meta
        WHEN NEW.key = 'fold_due' BEGIN SELECT RAISE(ABORT, 'injected storage failure'); END`);
    });
    expect((await importBatch(site, newPeople('lost', 1))).status).toBe(200);
    expect(await runDurableObjectAlarm(stub)).toBe(true); // the cycle fails, retried later
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec('DROP TRIGGER r8_fail');
    });
    // The retry, same instance (no eviction, so no recovery by `received`).
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await settle(site);
    expect(await attemptRows(site.siteId)).toBe(1);
  }, 30_000);

  it('held: writes that fail before or after committing a fold keep the log exact', async () => {
    const site = await seedSite('r8-fold-faults', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    const stub = stateOf(site.siteId);
    expect((await importBatch(site, newPeople('f0', 3))).status).toBe(200);
    await settle(site);
    expect(await logRows(site.siteId)).toBe(1);
    const due = await foldDue(site.siteId);
    expect(due).toBeGreaterThan(Date.now() + HOUR - 60_000);
    // The cycle's first D1 batch is its mirror (the events' copies): it passes.
    const plans = [
      { passBatches: 1, failBatchesBefore: 1 },
      { passBatches: 1, failBatchesAfter: 1 },
    ];
    for (const plan of plans) {
      // The fold is due (an hour went by); this instance's next write carries it, and fails.
      await evictDurableObject(stub);
      await runInDurableObject(stub, (instance, state) => {
        state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'fold_due'", '1');
        const object = instance as unknown as { env: Env };
        object.env = { ...object.env, DB: faultyDb(object.env.DB, { ...plan }) };
      });
      const tag = 'failBatchesBefore' in plan ? 'f1' : 'f2';
      expect((await importBatch(site, newPeople(tag, 2))).status).toBe(200);
      expect(await runDurableObjectAlarm(stub)).toBe(true);
      // Before: nothing written, the fold still due. After: written and folded, still due.
      expect(await logRows(site.siteId)).toBe('failBatchesBefore' in plan ? 1 : 0);
      expect(await foldDue(site.siteId)).toBe(1);
      expect(await runDurableObjectAlarm(stub)).toBe(true); // the retry writes and folds
      await settle(site);
      expect(await logRows(site.siteId)).toBe(0);
      expect(await foldDue(site.siteId)).toBeNull();
      // The next write starts a new hour.
      expect((await importBatch(site, newPeople(`${tag}b`, 1))).status).toBe(200);
      await settle(site);
      expect(await logRows(site.siteId)).toBe(1);
      expect(await foldDue(site.siteId)).toBeGreaterThan(Date.now() + HOUR - 60_000);
    }
    expect(await attemptRows(site.siteId)).toBe(3 + 2 + 1 + 2 + 1);
    await expectRollupsExact(site);
  }, 30_000);
});

describe('held: readers of an unfolded log', () => {
  it('an erasure and a merge with the log unfolded leave rollups equal to a rebuild', async () => {
    const site = await seedSite('r8-erase-unfolded', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    const at = (m: number) => `2025-03-03T10:${String(m).padStart(2, '0')}:00Z`;
    const events = [
      track('a', { anonymousId: 'd1', userId: 'u1' }, 'x1', at(1)),
      track('b', { anonymousId: 'd1', userId: 'u1' }, 'x2', at(2)),
      track('a', { anonymousId: 'd2', userId: 'u2' }, 'x3', at(3)),
      track('a', { anonymousId: 'd3' }, 'x4', at(4)),
    ];
    expect((await importBatch(site, events)).status).toBe(200);
    await settle(site);
    expect(await logRows(site.siteId)).toBe(1);
    expect(await foldDue(site.siteId)).toBeGreaterThan(Date.now());
    const merge = await peopleAction(site, 'merge', { userIds: ['u1', 'u2'] });
    expect(merge.ok).toBe(true);
    await settle(site);
    // The export still hands out the stored event (raw) from the object's storage.
    const exported = await SELF.fetch(
      `https://goalstep.test/admin/sites/${site.siteId}/people/u1`,
      { headers: ADMIN },
    );
    expect(exported.status).toBe(200);
    const data = (await exported.json()) as { stateEvents: Array<{ raw: string | null }> };
    expect(data.stateEvents.length).toBe(3);
    for (const row of data.stateEvents) expect(typeof row.raw).toBe('string');
    const erased = await SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/people/d3`, {
      method: 'DELETE',
      headers: ADMIN,
    });
    expect(erased.status).toBe(200);
    await settle(site);
    const d3 = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM attempts WHERE site_id = ? AND person_id = 'a:d3'",
    )
      .bind(site.siteId)
      .first<{ n: number }>();
    expect(d3?.n).toBe(0);
    expect(await attemptRows(site.siteId)).toBeGreaterThan(0);
    await expectRollupsExact(site);
  });
});

// The guard as it was before aa63db5 (every key by defineProperty, the repair always run): the
// oracle the new copy must agree with, key for key.
const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
function oldGuard(input: Record<string, unknown>): unknown {
  const enc = new TextEncoder();
  const cut = (text: string, max: number) => {
    if (enc.encode(text).byteLength <= max) return text;
    let bytes = 0;
    let end = 0;
    for (const char of text) {
      const code = char.codePointAt(0) ?? 0;
      const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
      if (bytes + size > max) break;
      bytes += size;
      end += char.length;
    }
    return text.slice(0, end);
  };
  const value = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') return cut(v.replace(LONE, '\uFFFD'), 8 * 1024);
    if (typeof v !== 'object' || v === null) return v;
    if (depth >= 8) return null;
    if (Array.isArray(v)) return v.slice(0, 512).map((item) => value(item, depth + 1));
    return object(v as Record<string, unknown>, depth);
  };
  const object = (v: Record<string, unknown>, depth: number) => {
    const out = {};
    for (const key of Object.keys(v).slice(0, 256)) {
      Object.defineProperty(out, cut(key.replace(LONE, '\uFFFD'), 255), {
        value: value(v[key], depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  };
  return object(input, 0);
}

/** Every object in the copy: a plain object whose keys are own, enumerable data properties. */
function expectPlain(value: unknown, path = '$'): void {
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => expectPlain(item, `${path}[${i}]`));
    return;
  }
  expect(Object.getPrototypeOf(value), path).toBe(Object.prototype);
  for (const key of Reflect.ownKeys(value)) {
    const d = Object.getOwnPropertyDescriptor(value, key);
    expect(d && 'value' in d && d.enumerable && d.writable && d.configurable, path).toBe(true);
    expectPlain(d?.value, `${path}.${String(key)}`);
  }
}

const HOSTILE = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  '__lookupSetter__',
  '0',
  '1',
  '01',
  '-1',
  '4294967294',
  '4294967295',
  '1e3',
  'a'.repeat(255),
  'a'.repeat(255) + 'b',
  'a'.repeat(255) + 'c',
  '\uD800',
  'x\uDC00',
  '\uFFFD',
  'x\uFFFD',
  '\u{1F600}'.repeat(64),
  '\u{1F600}'.repeat(63) + 'abcd',
];

describe('payload guard', () => {
  it('copies hostile keys as the defineProperty copy did, and pollutes nothing', () => {
    const key = fc.oneof(fc.constantFrom(...HOSTILE), fc.string({ unit: 'binary', maxLength: 6 }));
    const leaf = fc.oneof(
      fc.constantFrom<unknown>(null, true, 0, -1.5, '', '\uD83D', 'a\uDE00b', '\uD83D\uDE00'),
      fc.string({ unit: 'binary', maxLength: 8 }),
    );
    // JSON text, parsed as ingest parses it (so `__proto__` arrives as an own key).
    const { tree } = fc.letrec<{ tree: string }>((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf.map((v) => JSON.stringify(v)),
        fc.array(tie('tree'), { maxLength: 3 }).map((items) => `[${items.join(',')}]`),
        fc
          .array(fc.tuple(key, tie('tree')), { maxLength: 5 })
          .map((e) => `{${e.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
      ),
    }));
    const top = fc
      .array(fc.tuple(key, tree), { maxLength: 6 })
      .map((e) => `{${e.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);
    fc.assert(
      fc.property(top, (text) => {
        const input = JSON.parse(text) as Record<string, unknown>;
        const { value } = guardPayload(input);
        expect(JSON.stringify(value)).toBe(JSON.stringify(oldGuard(input)));
        expectPlain(value);
        expect(Object.getPrototypeOf({})).toBe(Object.prototype);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 3_000 },
    );
    // Deep nesting: capped at the same depth, objects or arrays.
    const deep = JSON.parse(`${'{"__proto__":'.repeat(20)}1${'}'.repeat(20)}`) as object;
    const guarded = guardPayload(deep as Record<string, unknown>).value;
    expect(JSON.stringify(guarded)).toBe(JSON.stringify(oldGuard(deep as Record<string, unknown>)));
    expectPlain(guarded);
  });

  it('repairs lone surrogates as String.prototype.toWellFormed does', () => {
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const halves = fc
      .array(fc.constantFrom('\uD800', '\uDBFF', '\uDC00', '\uDFFF', 'a', '\u{1F600}'), {
        maxLength: 8,
      })
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(fc.oneof(text, halves), (s) => {
        expect(wellFormed(s)).toBe((s as unknown as { toWellFormed(): string }).toWellFormed());
        // Twice in a row: the shortcut's regex keeps no state between calls.
        expect(wellFormed(s)).toBe((s as unknown as { toWellFormed(): string }).toWellFormed());
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('meter by statement', () => {
  it('attributes the rows of each statement of a batch to its own SQL', async () => {
    const db = meterEnv({ ...env, METER: '1' }).DB;
    await env.DB.exec('CREATE TABLE r8_probe (a INTEGER PRIMARY KEY, b TEXT)');
    resetTally();
    const results = await db.batch([
      db.prepare('SELECT COUNT(*) AS n FROM r8_probe'),
      db.prepare('INSERT INTO r8_probe (b) VALUES (?), (?)').bind('x', 'y'),
      db.prepare('UPDATE r8_probe SET b = ? WHERE b = ?').bind('z', 'x'),
      // Prepared on the unmetered binding: counted, under '?'.
      env.DB.prepare('INSERT INTO r8_probe (b) VALUES (?)').bind('w'),
      db.prepare('DELETE FROM r8_probe WHERE b = ?').bind('nothing'),
    ]);
    expect(results.map((r) => r.meta.changes)).toEqual([0, 2, 1, 1, 0]);
    const tally = readTally();
    expect(tally.d1WrittenBySql).toEqual({
      'INSERT INTO r8_probe (b) VALUES (?), (?)': 2,
      'UPDATE r8_probe SET b = ? WHERE b = ?': 1,
      '?': 1,
    });
    expect(tally.d1RowsWritten).toBe(4);
  });

  it("tells the fold's rollup writes from a rebuild's", async () => {
    // "D1 rows written by statement ..., to tell where they go": the fold and the rebuild are
    // the two statements that write rollups.
    const site = await seedSite('r8-meter-keys', ['a', 'b']);
    await waitReady(site.siteId, site.goalId, 1);
    expect((await importBatch(site, newPeople('m', 3))).status).toBe(200);
    await settle(site);
    expect(await logRows(site.siteId)).toBe(1);
    const db = meterEnv({ ...env, METER: '1' }).DB;
    resetTally();
    await db.batch(foldLogStatements(db, site.siteId));
    const fold = Object.keys(readTally().d1WrittenBySql);
    resetTally();
    await rebuildRollups(db, site.siteId, [{ id: site.goalId, version: 1 }], Date.now());
    const rebuild = Object.keys(readTally().d1WrittenBySql);
    expect(fold.length).toBeGreaterThan(0);
    expect(rebuild.filter((sql) => fold.includes(sql))).toEqual([]);
  });
});
