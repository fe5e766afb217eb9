/**
 * Admin merges, splits and reverts (docs/IDENTITY.md), and the concurrency cases C33 and C34:
 * events for both sides of a merge arriving while it runs, and a Durable Object reset while an
 * event is in flight. Expected numbers are worked out by hand.
 */
import {
  abortAllDurableObjects,
  createExecutionContext,
  createScheduledController,
  env,
  evictDurableObject,
  runInDurableObject,
  SELF,
  waitOnExecutionContext,
} from 'cloudflare:test';
import worker from '../../src/index';
import {
  counts,
  identify,
  importBatch,
  report,
  seedSite,
  settle,
  track,
  type TestSite,
} from './helpers';
import {
  auditOf,
  explain,
  identityStats,
  importText,
  peopleAction,
  revertAction,
} from './identity-helpers';

const DAY = ['2025-03-03', '2025-03-04'] as const;
const at = (minute: number, second = 0) =>
  new Date(Date.UTC(2025, 2, 3, 10, minute, second)).toISOString();

/** People with progress rows in D1 for the site: stale rows of a merged-away person show here. */
async function peopleWithRows(site: TestSite): Promise<string[]> {
  const { results } = await env.DB.prepare(
    'SELECT DISTINCT person_id FROM attempts WHERE site_id = ? ORDER BY person_id',
  )
    .bind(site.siteId)
    .all<{ person_id: string }>();
  return results.map((r) => r.person_id);
}

describe('admin merge, split and revert', () => {
  it('merges two known users, splits one back out and reverts both, recomputing', async () => {
    const site = await seedSite('adm', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'ada' }, 'adm-1', at(0)),
      track('step_2', { userId: 'ada-work' }, 'adm-2', at(5)),
    ]);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);

    // The merge is written before the answer: the next (uncached) report already has it.
    const merged = await peopleAction(site, 'merge', {
      userIds: ['ada-work', 'ada'],
      note: 'one customer',
    });
    expect(merged.status).toBe(201);
    const { actionId: mergeId } = (await merged.json()) as { actionId: number };
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    const person = await explain(site, { userId: 'ada-work' });
    expect(person.userIds).toEqual(['ada', 'ada-work']);
    expect(person.merges).toEqual([{ userIds: ['ada-work', 'ada'], actionId: mergeId }]);
    expect(person.actions).toEqual([
      expect.objectContaining({ id: mergeId, kind: 'merge', by: 'root' }),
    ]);
    expect(await peopleWithRows(site)).toEqual(['u:ada']);

    const again = await peopleAction(site, 'merge', { userIds: ['ada', 'ada-work'] });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ code: 'already_merged' });
    expect((await peopleAction(site, 'merge', { userIds: ['ada', 'nobody'] })).status).toBe(404);
    expect((await peopleAction(site, 'merge', { userIds: ['ada', 'ada'] })).status).toBe(400);

    const split = await peopleAction(site, 'split', { userId: 'ada-work' });
    expect(split.status).toBe(201);
    const { actionId: splitId, severed } = (await split.json()) as {
      actionId: number;
      severed: number;
    };
    expect(severed).toBe(1);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    const alone = await explain(site, { userId: 'ada-work' });
    expect(alone.person).toBe('u:ada-work');
    // Both admin actions stay on the record of the split-out user.
    expect(alone.actions.map((a) => [a.id, a.kind])).toEqual([
      [mergeId, 'merge'],
      [splitId, 'split'],
    ]);

    expect((await revertAction(site, splitId)).status).toBe(200);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    expect((await revertAction(site, mergeId)).status).toBe(200);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    expect((await revertAction(site, mergeId)).status).toBe(404);
    // ada-work never entered (no step_1), so only ada has progress rows.
    expect(await peopleWithRows(site)).toEqual(['u:ada']);
  });

  it('keeps merges and links after the site object is evicted', async () => {
    const site = await seedSite('evict', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { anonymousId: 'tablet' }, 'ev-1', at(0)),
      identify('tablet', 'eve', 'ev-2', at(1)),
      track('step_1', { userId: 'eve-2' }, 'ev-3', at(2)),
    ]);
    await settle(site);
    const merged = await peopleAction(site, 'merge', { userIds: ['eve', 'eve-2'] });
    expect(merged.status).toBe(201);

    await evictDurableObject(env.SITE_STATE.get(env.SITE_STATE.idFromName(site.siteId)));
    // The rebuilt object reads its facts and actions back from its SQLite storage.
    await importBatch(site, [track('step_2', { anonymousId: 'tablet' }, 'ev-4', at(3))]);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    const person = await explain(site, { anonymousId: 'tablet' });
    expect(person.person).toBe('u:eve');
    expect(person.userIds).toEqual(['eve', 'eve-2']);
    expect(person.events).toBe(4);
  });

  it('rebuilds the users of an object stored by schema 2 from its events', async () => {
    const site = await seedSite('schema2', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'old@x' }, 's2-1', at(0)),
      { type: 'alias', previousId: 'old@x', userId: 'new@x', messageId: 's2-2', timestamp: at(10) },
      track('step_2', { userId: 'new@x' }, 's2-3', at(5)),
    ]);
    await settle(site);

    // Put the users table back in schema 2's shape (only a flag per user), then restart.
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName(site.siteId));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec('DROP TABLE users');
      sql.exec(`CREATE TABLE users (user TEXT PRIMARY KEY, first_ts INTEGER NOT NULL,
        first_mid TEXT NOT NULL, identified INTEGER NOT NULL)`);
      // A stale row set: new@x is missing, so only a rebuild from the events can know it.
      sql.exec("INSERT INTO users VALUES ('old@x', 0, 's2-1', 1)");
      sql.exec("UPDATE meta SET value = '2' WHERE key = 'identity_schema'");
    });
    await evictDurableObject(stub);

    // Rebuilt from the events: new@x is identified from 10:05, before the alias at 10:10.
    const person = await explain(site, { userId: 'new@x' });
    expect(person.userIds).toEqual(['new@x']);
    expect(person.refused.map((r) => r.messageId)).toEqual(['s2-2']);
    expect((await identityStats(site)).users).toBe(2);
  });

  it('moves an object stored by schema 3 to lean users and links, keeping its people', async () => {
    const site = await seedSite('schema3', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { anonymousId: 'phone' }, 's3-1', at(0)),
      identify('phone', 'zoe', 's3-2', at(1)),
      track('step_2', { userId: 'zoe' }, 's3-3', at(2)),
    ]);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);

    // Put users and links back in schema 3's rowid shape, each emptied (a rebuild must
    // find them again in the events), then restart.
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName(site.siteId));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec('DROP TABLE users');
      sql.exec('DROP TABLE links');
      sql.exec(`CREATE TABLE users (user TEXT PRIMARY KEY, first_ts INTEGER NOT NULL,
        first_mid TEXT NOT NULL, ident_ts INTEGER, ident_mid TEXT)`);
      sql.exec(`CREATE TABLE links (message_id TEXT PRIMARY KEY, anon TEXT NOT NULL,
        user TEXT NOT NULL, ts INTEGER NOT NULL)`);
      sql.exec("UPDATE meta SET value = '3' WHERE key = 'identity_schema'");
    });
    await evictDurableObject(stub);

    // The phone is zoe's again: one person who did both steps.
    const person = await explain(site, { anonymousId: 'phone' });
    expect(person.person).toBe('u:zoe');
    expect((await identityStats(site)).linkedDevices).toBe(1);
    await runInDurableObject(stub, (_instance, state) => {
      const shapes = state.storage.sql
        .exec<{
          name: string;
          sql: string;
        }>("SELECT name, sql FROM sqlite_master WHERE name IN ('users', 'links') ORDER BY name")
        .toArray();
      expect(shapes.map((t) => [t.name, /WITHOUT ROWID\s*$/.test(t.sql)])).toEqual([
        ['links', true],
        ['users', true],
      ]);
    });
  });

  it('splits a wrongly linked device back into a person of its own', async () => {
    const site = await seedSite('adm-dev', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'ada' }, 'dev-1', at(0)),
      identify('kiosk', 'ada', 'dev-2', at(1)),
      track('step_2', { anonymousId: 'kiosk' }, 'dev-3', at(2)),
    ]);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);

    const split = await peopleAction(site, 'split', { anonymousId: 'kiosk' });
    expect(split.status).toBe(201);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    const kiosk = await explain(site, { anonymousId: 'kiosk' });
    expect(kiosk.person).toBe('a:kiosk');
    expect((await identityStats(site)).people).toBe(2);

    const { actionId } = (await split.json()) as { actionId: number };
    await revertAction(site, actionId);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    expect((await peopleAction(site, 'split', { anonymousId: 'never-linked' })).status).toBe(409);
  });

  it('accepts numeric ids in merge and split bodies, read as ingest reads them', async () => {
    const site = await seedSite('adm-num', ['step_1', 'step_2']);
    const stamp = (s: number) => `"timestamp":"${at(0, s)}","messageId":"num-${s}"`;
    // The two big ids round to the same double: read lossily, they would be one id.
    const res = await importText(
      site,
      `{"batch":[
        {"type":"track","event":"step_1","userId":12345678901234567891,${stamp(1)}},
        {"type":"track","event":"step_2","userId":42,${stamp(2)}},
        {"type":"track","event":"step_2","userId":12345678901234567890,${stamp(3)}}
      ]}`,
    );
    expect(res.status).toBe(200);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);

    const merged = await peopleAction(
      site,
      'merge',
      '{"userIds":[42,12345678901234567891],"note":"numbers"}',
    );
    expect(merged.status).toBe(201);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    expect((await explain(site, { userId: '42' })).userIds).toEqual(['12345678901234567891', '42']);
    expect((await explain(site, { userId: '12345678901234567890' })).userIds).toEqual([
      '12345678901234567890',
    ]);

    const split = await peopleAction(site, 'split', '{"userId":42}');
    expect(split.status).toBe(201);
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    // A number where an id cannot be (the note) is still refused with the usual code.
    const bad = await peopleAction(site, 'merge', '{"userIds":[42,"x"],"note":7}');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'invalid_field' });
  });

  it('answers bad admin input with a stable code', async () => {
    const site = await seedSite('adm-bad', ['step_1']);
    const both = await peopleAction(site, 'split', { userId: 'a', anonymousId: 'b' });
    expect(both.status).toBe(400);
    expect(await both.json()).toMatchObject({ code: 'invalid_field' });
    const missing = await SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/people`, {
      headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` },
    });
    expect(missing.status).toBe(400);
    const anonymous = await SELF.fetch(
      `https://goalstep.test/admin/sites/${site.siteId}/people?userId=a`,
    );
    expect(anonymous.status).toBe(401);
  });
});

describe('admin audit of people actions', () => {
  it('records who merged, split and reverted which ids, and when, in the audit log', async () => {
    const site = await seedSite('adm-audit', ['step_1']);
    await importBatch(site, [
      track('step_1', { userId: 'ann' }, 'aud-1', at(0)),
      track('step_1', { userId: 'ann-2' }, 'aud-2', at(1)),
      identify('ann-phone', 'ann', 'aud-3', at(2)),
    ]);
    await settle(site);
    // A support agent's own token, scoped to this site: the audit must name it, not root.
    const created = await SELF.fetch('https://goalstep.test/admin/tokens', {
      method: 'POST',
      headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'support-jo', siteId: site.siteId }),
    });
    expect(created.status).toBe(201);
    const jo = { Authorization: `Bearer ${((await created.json()) as { token: string }).token}` };

    const startedAt = Date.now();
    const merged = await peopleAction(
      site,
      'merge',
      { userIds: ['ann-2', 'ann'], note: 'same customer' },
      jo,
    );
    expect(merged.status).toBe(201);
    const { actionId: mergeId } = (await merged.json()) as { actionId: number };
    const split = await peopleAction(site, 'split', { anonymousId: 'ann-phone' }, jo);
    expect(split.status).toBe(201);
    const { actionId: splitId } = (await split.json()) as { actionId: number };
    expect((await revertAction(site, mergeId, jo)).status).toBe(200);
    expect((await revertAction(site, splitId, jo)).status).toBe(200);
    // Refused actions change nothing, so they leave no entry.
    expect((await peopleAction(site, 'merge', { userIds: ['ann', 'nobody'] }, jo)).status).toBe(
      404,
    );
    expect((await revertAction(site, mergeId, jo)).status).toBe(404);
    const finishedAt = Date.now();

    const entries = await auditOf(site, 'person.');
    expect(entries.map((e) => [e.actor, e.action, e.siteId, e.detail])).toEqual([
      [
        'support-jo',
        'person.revert',
        site.siteId,
        { actionId: splitId, kind: 'split', anonymousId: 'ann-phone' },
      ],
      [
        'support-jo',
        'person.revert',
        site.siteId,
        { actionId: mergeId, kind: 'merge', userIds: ['ann-2', 'ann'] },
      ],
      [
        'support-jo',
        'person.split',
        site.siteId,
        { actionId: splitId, anonymousId: 'ann-phone', severed: 1, note: null },
      ],
      [
        'support-jo',
        'person.merge',
        site.siteId,
        { actionId: mergeId, userIds: ['ann-2', 'ann'], person: 'u:ann', note: 'same customer' },
      ],
    ]);
    for (const entry of entries) {
      expect(entry.at).toBeGreaterThanOrEqual(startedAt);
      expect(entry.at).toBeLessThanOrEqual(finishedAt);
    }
  });
});

describe('admin audit after an erasure', () => {
  it('keeps the entries of an erased person’s merges and splits without their ids', async () => {
    const site = await seedSite('adm-erase', ['step_1']);
    await importBatch(site, [
      track('step_1', { userId: 'bea' }, 'er-1', at(0)),
      track('step_1', { userId: 'bea-2' }, 'er-2', at(1)),
      identify('bea-phone', 'bea', 'er-3', at(2)),
      track('step_1', { userId: 'cid' }, 'er-4', at(3)),
      identify('cid-phone', 'cid', 'er-5', at(4)),
    ]);
    await settle(site);
    const merged = await peopleAction(site, 'merge', { userIds: ['bea-2', 'bea'] });
    const { actionId: mergeId } = (await merged.json()) as { actionId: number };
    const split = await peopleAction(site, 'split', { anonymousId: 'bea-phone' });
    const { actionId: splitId } = (await split.json()) as { actionId: number };
    // Another customer's split, which the erasure must leave alone.
    const other = await peopleAction(site, 'split', { anonymousId: 'cid-phone' });
    const { actionId: otherId } = (await other.json()) as { actionId: number };

    const erased = await SELF.fetch(`https://goalstep.test/admin/sites/${site.siteId}/people/bea`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` },
    });
    expect(erased.status).toBe(200);

    const entries = await auditOf(site, 'person.');
    expect(entries.map((e) => [e.action, e.detail])).toEqual([
      ['person.erase', expect.objectContaining({ events: 3 })],
      ['person.split', { actionId: otherId, anonymousId: 'cid-phone', severed: 1, note: null }],
      ['person.split', { actionId: splitId, erased: true }],
      ['person.merge', { actionId: mergeId, erased: true }],
    ]);
    expect(JSON.stringify(entries)).not.toContain('bea');
  });
});

describe('concurrency (C33)', () => {
  it('loses no update when 50 tracks and an identify arrive at once, 20 times', async () => {
    for (let run = 0; run < 20; run += 1) {
      const site = await seedSite(`c33-${run}`, ['step_0', 'step_1']);
      await importBatch(
        site,
        [0, 1, 2].map((i) => track('step_0', { anonymousId: 'anon-c33' }, `c33-p${i}`, at(0, i))),
      );
      await settle(site);

      const requests = [
        [identify('anon-c33', 'user-c33', 'c33-id', at(1))],
        ...Array.from({ length: 50 }, (_, i) => [
          track(
            'step_1',
            { userId: 'user-c33' },
            `c33-m${String(i + 1).padStart(2, '0')}`,
            at(2, i),
          ),
        ]),
      ].sort(() => Math.random() - 0.5);
      const answers = await Promise.all(requests.map((batch) => importBatch(site, batch)));
      expect(answers.every((res) => res.status === 200)).toBe(true);
      await settle(site);

      const person = await explain(site, { userId: 'user-c33' });
      // 3 merged step_0 events, 50 step_1 events, the identify; the link recorded once.
      expect(person.events).toBe(54);
      expect(person.links.map((l) => l.messageId)).toEqual(['c33-id']);
      // D1 keeps each of the 51 concurrent events once (plus the 3 earlier ones).
      const stored = await env.DB.prepare(
        "SELECT COUNT(*) AS n FROM events WHERE site_id = ? AND message_id LIKE 'c33-%'",
      )
        .bind(site.siteId)
        .first<{ n: number }>();
      expect(stored?.n).toBe(54);
      expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
      expect(await peopleWithRows(site)).toEqual(['u:user-c33']);
    }
  }, 120_000);

  it('counts events of both sides once when they arrive during a merge', async () => {
    const site = await seedSite('race', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'left' }, 'race-0', at(0)),
      track('step_1', { userId: 'right' }, 'race-1', at(30)),
    ]);
    await settle(site);
    expect(await peopleWithRows(site)).toEqual(['u:left', 'u:right']);

    const sides = Array.from({ length: 30 }, (_, i) =>
      importBatch(site, [
        track(
          i % 2 ? 'step_2' : 'step_1',
          { userId: i % 2 ? 'right' : 'left' },
          `race-m${i}`,
          at(1, i),
        ),
      ]),
    );
    const merge = peopleAction(site, 'merge', { userIds: ['right', 'left'] });
    const [merged, ...rest] = await Promise.all([merge, ...sides]);
    expect(merged?.status).toBe(201);
    expect(rest.every((res) => res.status === 200)).toBe(true);
    await settle(site);

    const person = await explain(site, { userId: 'right' });
    expect(person.events).toBe(32);
    expect((await identityStats(site)).people).toBe(1);
    // left enters at 10:00:00; right's step_2 at 10:01:01 is the earliest after it (10:30 later).
    const r = await report(site, ...DAY);
    expect(counts(r)).toEqual([1, 1]);
    expect(r.steps[1]?.medianSecondsFromPrevious).toBe(61);
    // The merged-away person's rows are gone: the merged customer is counted once.
    expect(await peopleWithRows(site)).toHaveLength(1);
  });
});

describe('object reset (C34)', () => {
  it('keeps 4,000 events and applies an event in flight during a reset once', async () => {
    const site = await seedSite('c34', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'user-c34' }, 'c34-m0000', '2025-03-03T09:00:00.000Z'),
    ]);
    for (let chunk = 0; chunk < 8; chunk += 1) {
      const batch = Array.from({ length: 500 }, (_, i) => {
        const n = chunk * 500 + i + 1;
        const ts = new Date(Date.UTC(2025, 2, 3, 10, 0, 0, n)).toISOString();
        return track('browse', { userId: 'user-c34' }, `c34-m${String(n).padStart(4, '0')}`, ts);
      });
      expect((await importBatch(site, batch)).status).toBe(200);
    }
    await settle(site);

    const inFlight = importBatch(site, [
      track('step_2', { userId: 'user-c34' }, 'c34-m4001', '2025-03-03T12:00:00.000Z'),
    ]);
    await abortAllDurableObjects();
    expect((await inFlight).status).toBe(200);
    // The client's retry is a duplicate; the cron's reconciler applies whatever the reset cut.
    const retry = await importBatch(site, [
      track('step_2', { userId: 'user-c34' }, 'c34-m4001', '2025-03-03T12:00:00.000Z'),
    ]);
    expect(await retry.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    const controller = createScheduledController({
      scheduledTime: Date.now() + 120_000,
      cron: '*/15 * * * *',
    });
    const ctx = createExecutionContext();
    await worker.scheduled(controller, env, ctx);
    await waitOnExecutionContext(ctx);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    expect((await explain(site, { userId: 'user-c34' })).events).toBe(4002);
  }, 120_000);
});

describe('per-person event limit', () => {
  it('computes progress from the newest 20,000 events and still keeps every event', async () => {
    const site = await seedSite('limit', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'heavy' }, 'lim-a', '2025-03-03T09:00:00.000Z'),
      track('step_2', { userId: 'heavy' }, 'lim-z', '2025-03-03T12:00:00.000Z'),
    ]);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);

    // 20,000 events between the two steps, in batches of 1,000 (the ingest batch limit).
    for (let chunk = 0; chunk < 20; chunk += 1) {
      const batch = Array.from({ length: 1000 }, (_, i) => {
        const n = chunk * 1000 + i + 1;
        const ts = new Date(Date.UTC(2025, 2, 3, 10, 0, 0, n)).toISOString();
        return track('browse', { userId: 'heavy' }, `lim-${String(n).padStart(5, '0')}`, ts);
      });
      expect((await importBatch(site, batch)).status).toBe(200);
    }
    await settle(site);

    // 20,002 events; the newest 20,000 leave out step_1 (09:00) and the first browse, so the
    // person has no entry left in this goal (docs/IDENTITY.md, per-person limits).
    const person = await explain(site, { userId: 'heavy' });
    expect(person.events).toBe(20_002);
    expect(person.eventsUsed).toBe(20_000);
    expect(counts(await report(site, ...DAY))).toEqual([0, 0]);
  }, 180_000);
});
