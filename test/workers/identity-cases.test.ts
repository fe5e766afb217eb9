/**
 * The identity edge cases of /work/shared/cases/edge-cases.md (C13, C14, C15, C17, C32) and the
 * rules of docs/IDENTITY.md, through the real Worker, D1 and the site's Durable Object.
 * Expected numbers are worked out by hand from docs/IDENTITY.md and docs/METRICS.md.
 */
import { counts, importBatch, report, seedSite, settle, track } from './helpers';
import { addGoal, explain, explainRaw, identityStats, importText } from './identity-helpers';

const DAY = ['2025-03-03', '2025-03-04'] as const;
const identify = (
  anonymousId: string | null,
  userId: unknown,
  messageId: string,
  timestamp: string,
) => ({
  type: 'identify',
  ...(anonymousId === null ? {} : { anonymousId }),
  userId,
  messageId,
  timestamp,
});
const alias = (previousId: string, userId: string, messageId: string, timestamp: string) => ({
  type: 'alias',
  previousId,
  userId,
  messageId,
  timestamp,
});

describe('placeholder ids (C13)', () => {
  it('merges nobody through placeholder ids and warns for each of them', async () => {
    const site = await seedSite('c13', ['signup_started']);
    const res = await importBatch(site, [
      track('signup_started', { anonymousId: 'anon-c13a' }, 'c13-m1', '2025-03-03T10:00:00.000Z'),
      identify('anon-c13a', 'undefined', 'c13-m2', '2025-03-03T10:00:01.000Z'),
      track('signup_started', { anonymousId: 'anon-c13b' }, 'c13-m3', '2025-03-03T11:00:00.000Z'),
      identify('anon-c13b', '[object Object]', 'c13-m4', '2025-03-03T11:00:01.000Z'),
      identify('anon-c13c', null, 'c13-m5', '2025-03-03T12:00:00.000Z'),
      alias('anon-c13b', 'null', 'c13-m6', '2025-03-03T12:00:02.000Z'),
    ]);
    const body = (await res.json()) as {
      accepted: number;
      warnings: Array<{ index: number; code: string }>;
      rejected: Array<{ index: number; code: string }>;
    };
    // Every placeholder gets per-event feedback; an alias with no usable userId has nothing
    // left to keep, so it is rejected rather than kept.
    expect(body.warnings.map((w) => [w.index, w.code])).toEqual([
      [1, 'junk_id_dropped'],
      [3, 'junk_id_dropped'],
      [4, 'identify_without_user_id'],
    ]);
    expect(body.rejected.map((r) => [r.index, r.code])).toEqual([[5, 'missing_alias_ids']]);
    expect(body.accepted).toBe(5);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([2]);
    for (const userId of ['undefined', 'null', '[object Object]']) {
      expect((await explainRaw(site, { userId })).status).toBe(404);
    }
    const stats = await identityStats(site);
    expect(stats).toMatchObject({ users: 0, linkedDevices: 0, people: 3 });
  });

  it('treats every documented placeholder form as junk, numbers included', async () => {
    const site = await seedSite('c13-forms', ['seen']);
    const forms: unknown[] = [
      '',
      '   ',
      'NULL',
      'None',
      'nil',
      'NaN',
      'anonymous',
      'Guest',
      '0',
      '-1',
      0,
      -1,
      '00000000-0000-0000-0000-000000000000',
      '00000000000000000000000000000000',
      '[]',
      '{}',
      'n/a',
    ];
    const res = await importBatch(
      site,
      forms.map((userId, i) => ({
        ...track('seen', { anonymousId: `dev-${i}` }, `form-${i}`, '2025-03-03T10:00:00.000Z'),
        userId,
      })),
    );
    const body = (await res.json()) as { accepted: number; warnings: Array<{ code: string }> };
    expect(body.accepted).toBe(forms.length);
    expect(body.warnings.filter((w) => w.code === 'junk_id_dropped')).toHaveLength(forms.length);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([forms.length]);
  });
});

describe('placeholder ids the list missed (C13)', () => {
  it('drops braced zero UUIDs, ids with control characters, invisible ids and -0', async () => {
    const site = await seedSite('c13-more', ['seen']);
    // Each form as JSON text (escapes and -0 written by hand: JSON.stringify(-0) is "0").
    const forms = [
      '"{00000000-0000-0000-0000-000000000000}"',
      '"{00000000000000000000000000000000}"',
      '"\\u0000"',
      '"user\\u0000"',
      '"\\u0000\\u0000"',
      '"ab\\u0007cd"',
      '"\\u001b[0m"',
      '"x\\u007f"',
      '"\\u0085"',
      '"\\u200b"',
      '" \\u200b\\u2060 "',
      '-0',
      '"-0"',
    ];
    // Two devices send each form: kept as an id, it would join them into one person.
    const events = forms.flatMap((form, i) =>
      ['a', 'b'].map(
        (device) =>
          `{"type":"track","event":"seen","anonymousId":"dev-${i}-${device}","userId":${form},` +
          `"messageId":"more-${i}-${device}","timestamp":"2025-03-03T10:00:00.000Z"}`,
      ),
    );
    // A device id made of a NUL leaves the event with no id at all.
    events.push(
      '{"type":"track","event":"seen","anonymousId":"\\u0000","messageId":"more-nul",' +
        '"timestamp":"2025-03-03T10:00:00.000Z"}',
    );
    const res = await importText(site, `{"batch":[${events.join(',')}]}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      accepted: number;
      warnings: Array<{ index: number; code: string }>;
      rejected: Array<{ index: number; code: string }>;
    };
    expect(body.accepted).toBe(forms.length * 2);
    expect(body.warnings.filter((w) => w.code === 'junk_id_dropped')).toHaveLength(
      forms.length * 2,
    );
    expect(body.rejected.map((r) => [r.index, r.code])).toEqual([
      [forms.length * 2, 'missing_identity'],
    ]);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([forms.length * 2]);
    expect(await identityStats(site)).toMatchObject({ users: 0, people: forms.length * 2 });
  });
});

describe('aliases decided by event time', () => {
  // The worked case of docs/IDENTITY.md: old@x is identified from 10:00, the alias is made at
  // 10:10, and new@x's first identifying event moves around the alias.
  const cases = [
    { site: 'alias-after', at: '2025-03-03T10:10:00.001Z', messageId: 'at-3', merged: true },
    { site: 'alias-before', at: '2025-03-03T10:09:59.999Z', messageId: 'at-3', merged: false },
    // Same millisecond: the message id decides ('at-1z' < 'at-2' < 'at-3').
    { site: 'alias-tie-before', at: '2025-03-03T10:10:00.000Z', messageId: 'at-1z', merged: false },
    { site: 'alias-tie-after', at: '2025-03-03T10:10:00.000Z', messageId: 'at-3', merged: true },
  ];

  it.each(cases)(
    'merges only if new@x was not yet identified at the alias (identified at $at, $messageId)',
    async ({ site: siteId, at, messageId, merged }) => {
      const site = await seedSite(siteId, ['step_1', 'step_2']);
      // new@x arrives first: D1 already holds its events when the alias comes in.
      await importBatch(site, [
        track('other', { userId: 'new@x' }, messageId, at),
        track('step_2', { userId: 'new@x' }, 'at-4', '2025-03-03T10:20:00.000Z'),
      ]);
      const res = await importBatch(site, [
        track('step_1', { userId: 'old@x' }, 'at-1', '2025-03-03T10:00:00.000Z'),
        alias('old@x', 'new@x', 'at-2', '2025-03-03T10:10:00.000Z'),
      ]);
      const body = (await res.json()) as { warnings: Array<{ index: number; code: string }> };
      expect(body.warnings.map((w) => [w.index, w.code])).toEqual(
        merged ? [] : [[1, 'alias_refused_identified_users']],
      );
      await settle(site);

      expect(counts(await report(site, ...DAY))).toEqual(merged ? [1, 1] : [1, 0]);
      const person = await explain(site, { userId: 'new@x' });
      expect(person.userIds).toEqual(merged ? ['new@x', 'old@x'] : ['new@x']);
      expect(person.refused.map((r) => r.messageId)).toEqual(merged ? [] : ['at-2']);
      // Both are identified users; old@x's first event (10:00) is the earlier one.
      expect(person.person).toBe(merged ? 'u:old@x' : 'u:new@x');
    },
  );
});

describe('two identified users (C14)', () => {
  it('keeps alice and bob apart and refuses both implicit merges with a warning', async () => {
    const site = await seedSite('c14', ['project_created']);
    const res = await importBatch(site, [
      identify('anon-c14a', 'user-alice', 'c14-m1', '2025-03-03T10:00:00.000Z'),
      identify('anon-c14b', 'user-bob', 'c14-m2', '2025-03-03T10:05:00.000Z'),
      track('project_created', { userId: 'user-bob' }, 'c14-m3', '2025-03-03T10:06:00.000Z'),
      alias('user-bob', 'user-alice', 'c14-m4', '2025-03-03T10:10:00.000Z'),
      identify('anon-c14b', 'user-alice', 'c14-m5', '2025-03-03T10:11:00.000Z'),
    ]);
    const body = (await res.json()) as { warnings: Array<{ index: number; code: string }> };
    expect(body.warnings.map((w) => [w.index, w.code])).toEqual([
      [3, 'alias_refused_identified_users'],
      [4, 'device_shared'],
    ]);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([1]);
    const bob = await explain(site, { userId: 'user-bob' });
    expect(bob.person).toBe('u:user-bob');
    expect(bob.userIds).toEqual(['user-bob']);
    // Bob's identify (m2) and his project (m3); the alias (m4) and m5 carry alice's id.
    expect(bob.events).toBe(2);
    expect(bob.refused).toEqual([
      expect.objectContaining({ messageId: 'c14-m4', reason: 'alias_refused_identified_users' }),
    ]);
    const alice = await explain(site, { userId: 'user-alice' });
    expect(alice.userIds).toEqual(['user-alice']);
    // anon-c14b counts for alice only from 10:11; bob's history stays bob's.
    expect(alice.anonymousIds).toEqual(['anon-c14a', 'anon-c14b']);
    expect(alice.events).toBe(3);
    expect((await identityStats(site)).people).toBe(2);
  });

  it('refuses the alias in the object when the ingest could not know yet', async () => {
    const site = await seedSite('c14-late', ['project_created']);
    // The alias arrives first, when neither id is known to be identified: no warning yet.
    const first = await importBatch(site, [
      alias('user-bob', 'user-alice', 'late-m1', '2025-03-03T10:10:00.000Z'),
    ]);
    expect(((await first.json()) as { warnings: unknown[] }).warnings).toEqual([]);
    await importBatch(site, [
      track('project_created', { userId: 'user-bob' }, 'late-m2', '2025-03-03T10:06:00.000Z'),
      track('project_created', { userId: 'user-alice' }, 'late-m3', '2025-03-03T10:07:00.000Z'),
    ]);
    await settle(site);
    expect(counts(await report(site, ...DAY))).toEqual([2]);
    expect((await explain(site, { userId: 'user-bob' })).refused).toHaveLength(1);
  });
});

describe('shared device (C15)', () => {
  it('gives the pre-login browsing to the first user and keeps both users apart', async () => {
    const site = await seedSite('c15', ['landing_viewed', 'order_placed']);
    const orders = await addGoal(site, 'orders', ['order_placed']);
    await importBatch(site, [
      track('landing_viewed', { anonymousId: 'dev-c15' }, 'c15-m1', '2025-03-03T09:00:00.000Z'),
      identify('dev-c15', 'user-c15a', 'c15-m2', '2025-03-03T09:01:00.000Z'),
      track(
        'order_placed',
        { userId: 'user-c15a', anonymousId: 'dev-c15' },
        'c15-m3',
        '2025-03-03T09:10:00.000Z',
      ),
      identify('dev-c15', 'user-c15b', 'c15-m4', '2025-03-03T18:00:00.000Z'),
      track(
        'order_placed',
        { userId: 'user-c15b', anonymousId: 'dev-c15' },
        'c15-m5',
        '2025-03-03T18:05:00.000Z',
      ),
    ]);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    expect(counts(await report(orders, ...DAY))).toEqual([2]);
    const device = await explain(site, { anonymousId: 'dev-c15' });
    expect(device.deviceHistory?.map((h) => h.person)).toEqual([
      'u:user-c15a',
      'u:user-c15a',
      'u:user-c15b',
      'u:user-c15b',
    ]);
  });
});

describe('any-order identity (C17)', () => {
  /** The case's five events, with ids suffixed so that many copies can share one site. */
  const events = (n: number) => [
    track(
      'pricing_viewed',
      { anonymousId: `phone-c17-${n}` },
      `c17-m1-${n}`,
      '2025-03-03T08:00:00.000Z',
    ),
    identify(`laptop-c17-${n}`, `user-c17-${n}`, `c17-m2-${n}`, '2025-03-03T09:00:00.000Z'),
    identify(`phone-c17-${n}`, `user-c17-${n}`, `c17-m3-${n}`, '2025-03-03T08:05:00.000Z'),
    track(
      'pricing_viewed',
      { anonymousId: `laptop-c17-${n}` },
      `c17-m4-${n}`,
      '2025-03-03T08:58:00.000Z',
    ),
    track(
      'subscription_started',
      { userId: `user-c17-${n}` },
      `c17-m5-${n}`,
      '2025-03-03T09:10:00.000Z',
    ),
  ];

  /** Every permutation of 0..n-1. */
  function permutations(n: number): number[][] {
    if (n === 0) return [[]];
    return permutations(n - 1).flatMap((p) =>
      Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
    );
  }

  it('counts one person converting 70 min after the phone in all 120 orders', async () => {
    const orders = permutations(5);
    expect(new Set(orders.map((o) => o.join(''))).size).toBe(120);
    const site = await seedSite('c17', ['pricing_viewed', 'subscription_started']);
    // Copy n of the case is delivered in order n, one event per request; copies run side by side.
    await Promise.all(
      orders.map(async (order, n) => {
        const copy = events(n);
        for (const index of order)
          expect((await importBatch(site, [copy[index]])).status).toBe(200);
      }),
    );
    await settle(site);

    const r = await report(site, ...DAY);
    expect(counts(r)).toEqual([120, 120]);
    expect(r.steps[1]?.medianSecondsFromPrevious).toBe(4200);
    expect((await identityStats(site)).people).toBe(120);
  }, 60_000);
});

describe('chains, cycles and the D1 parameter cap (C32)', () => {
  it('folds 150 aliased devices into one person without too many SQL variables', async () => {
    const site = await seedSite('c32', ['step_1', 'step_2']);
    const ids = Array.from({ length: 150 }, (_, i) => `anon-c32-${String(i + 1).padStart(3, '0')}`);
    const at = (s: number) => new Date(Date.UTC(2025, 2, 3, 10, 0, s)).toISOString();
    const res = await importBatch(site, [
      ...ids.map((id, i) => track('step_1', { anonymousId: id }, `c32-t${i}`, at(i))),
      ...ids.map((id, i) => alias(id, 'user-c32', `c32-a${i}`, at(200 + i))),
      track('step_2', { userId: 'user-c32' }, 'c32-end', at(400)),
    ]);
    expect(res.status).toBe(200);
    await settle(site);

    // One person; the counted attempt is the earliest of the equally far ones (step_1 at 0 s).
    const r = await report(site, ...DAY);
    expect(counts(r)).toEqual([1, 1]);
    expect(r.steps[1]?.medianSecondsFromPrevious).toBe(400);
    const person = await explain(site, { anonymousId: 'anon-c32-077' });
    expect(person.person).toBe('u:user-c32');
    expect(person.anonymousIds).toHaveLength(150);
    expect(person.events).toBe(301);
  });

  it('resolves an alias cycle to one canonical person', async () => {
    const site = await seedSite('cycle', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'x' }, 'cy-1', '2025-03-03T10:00:00.000Z'),
      alias('x', 'y', 'cy-2', '2025-03-03T10:01:00.000Z'),
      alias('y', 'z', 'cy-3', '2025-03-03T10:02:00.000Z'),
      alias('z', 'x', 'cy-4', '2025-03-03T10:03:00.000Z'),
      alias('phone', 'z', 'cy-5', '2025-03-03T10:04:00.000Z'),
      track('step_2', { anonymousId: 'phone' }, 'cy-6', '2025-03-03T10:05:00.000Z'),
    ]);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    for (const userId of ['x', 'y', 'z']) {
      const person = await explain(site, { userId });
      // x is the only identified user of the group, so it names the person.
      expect(person.person).toBe('u:x');
      expect(person.userIds).toEqual(['x', 'y', 'z']);
      expect(person.anonymousIds).toEqual(['phone']);
    }
    expect((await identityStats(site)).people).toBe(1);
  });

  it('refuses an alias that would join two identified users through a chain', async () => {
    const site = await seedSite('chain', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'x' }, 'ch-1', '2025-03-03T10:00:00.000Z'),
      // w is identified at 09:59, before the alias that would join it to x's group.
      track('other', { userId: 'w' }, 'ch-0', '2025-03-03T09:59:00.000Z'),
      track('step_2', { userId: 'w' }, 'ch-2', '2025-03-03T10:05:00.000Z'),
      alias('x', 'y', 'ch-3', '2025-03-03T10:01:00.000Z'),
      alias('y', 'w', 'ch-4', '2025-03-03T10:02:00.000Z'),
    ]);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    const x = await explain(site, { userId: 'x' });
    expect(x.userIds).toEqual(['x', 'y']);
    expect(x.refused.map((r) => r.messageId)).toEqual(['ch-4']);
  });

  it('accepts a chain alias to a user identified only after it', async () => {
    const site = await seedSite('chain-later', ['step_1', 'step_2']);
    await importBatch(site, [
      track('step_1', { userId: 'x' }, 'cl-1', '2025-03-03T10:00:00.000Z'),
      // w's first identifying event (10:05) is after the alias y→w (10:02).
      track('step_2', { userId: 'w' }, 'cl-2', '2025-03-03T10:05:00.000Z'),
      alias('x', 'y', 'cl-3', '2025-03-03T10:01:00.000Z'),
      alias('y', 'w', 'cl-4', '2025-03-03T10:02:00.000Z'),
    ]);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([1, 1]);
    const x = await explain(site, { userId: 'w' });
    expect(x.person).toBe('u:x');
    expect(x.userIds).toEqual(['w', 'x', 'y']);
    expect(x.refused).toEqual([]);
  });
});

describe('numeric ids', () => {
  it('keeps ids beyond 2^53 exact and joins the number and string forms of one id', async () => {
    const site = await seedSite('bigids', ['step_1', 'step_2']);
    // Both numbers round to the same double; they are two different customers.
    // The ids are written into the JSON text by hand: JSON.stringify would round them.
    const at = (s: number) => `"timestamp":"2025-03-03T10:00:0${s}Z","messageId":"n${s}"`;
    const res = await importText(
      site,
      `{"batch":[
        {"type":"track","event":"step_1","userId":12345678901234567890,${at(1)}},
        {"type":"track","event":"step_1","userId":12345678901234567891,${at(2)}},
        {"type":"track","event":"step_2","userId":"12345678901234567890",${at(3)}},
        {"type":"identify","anonymousId":42,"userId":12345678901234567891,${at(4)}},
        {"type":"track","event":"step_2","anonymousId":"42",${at(5)}}
      ]}`,
    );
    expect(res.status).toBe(200);
    await settle(site);

    expect(counts(await report(site, ...DAY))).toEqual([2, 2]);
    const big = await explain(site, { userId: '12345678901234567891' });
    expect(big.anonymousIds).toEqual(['42']);
    expect(big.events).toBe(3);
    expect((await explain(site, { userId: '12345678901234567890' })).events).toBe(2);
  });

  it('keeps a big numeric id exact when its key is written with a JSON escape', async () => {
    const site = await seedSite('bigids-escaped', ['step_1', 'step_2']);
    // "user\u0049d" is the key userId; the two ids round to the same double.
    const at = (s: number) => `"timestamp":"2025-03-03T10:00:0${s}Z","messageId":"e${s}"`;
    const res = await importText(
      site,
      `{"batch":[
        {"type":"track","event":"step_1","user\\u0049d":12345678901234567890,${at(1)}},
        {"type":"track","event":"step_2","user\\u0049d":12345678901234567891,${at(2)}}
      ]}`,
    );
    expect(res.status).toBe(200);
    await settle(site);
    // Two people: one entered, the other did only step 2.
    expect(counts(await report(site, ...DAY))).toEqual([1, 0]);
    expect((await explain(site, { userId: '12345678901234567891' })).events).toBe(1);
  });
});
