/**
 * The pure identity graph's limits and split bookkeeping (docs/IDENTITY.md), with hand-built
 * facts; the Worker-level rules are covered by identity-cases and identity-property.
 */
import { resolveIdentity, type IdentityFacts } from '../../src/identity/id-graph';

/** A user first seen at `ts`, identified from that event unless `identified` is false. */
const user = (ts: number, identified = true) => ({
  firstTs: ts,
  firstMessageId: `f${ts}`,
  identifiedAt: identified ? { ts, messageId: `f${ts}` } : null,
});
const link = (anonymousId: string, userId: string, ts: number) => ({
  anonymousId,
  userId,
  ts,
  messageId: `l-${anonymousId}-${ts}`,
});

describe('identity graph', () => {
  it('ignores device links past the per-person id limit, in event-time order', () => {
    const facts: IdentityFacts = {
      users: new Map([['u', user(0)]]),
      // Given out of order: the limit must follow event time, not list order.
      pairs: [link('d3', 'u', 30), link('d1', 'u', 10), link('d2', 'u', 20), link('d1', 'u', 40)],
      aliases: [],
      actions: [],
    };
    const resolution = resolveIdentity(facts, { maxIdsPerPerson: 3 });
    // u plus d1 and d2 fill the three places; d3 is refused; d1's second link is not a new id.
    expect([...resolution.devicesOf('u')].sort()).toEqual(['d1', 'd2']);
    expect(resolution.ignored).toEqual([{ messageId: 'l-d3-30', reason: 'person_id_limit' }]);
    expect(resolution.personOf({ ts: 35, messageId: 'e', anonymousId: 'd3', userId: null })).toBe(
      'a:d3',
    );
  });

  it('severs the links and merges a split names, and restores them when the split is gone', () => {
    const base: IdentityFacts = {
      users: new Map([
        ['a', user(0)],
        ['b', user(1)],
      ]),
      pairs: [link('phone', 'a', 5)],
      aliases: [],
      actions: [{ id: 1, kind: 'merge', userIds: ['a', 'b'] }],
    };
    expect(resolveIdentity(base).canonicalOf('b')).toBe('a');
    const split = resolveIdentity({
      ...base,
      actions: [
        ...base.actions,
        { id: 2, kind: 'split', severedMessageIds: ['l-phone-5'], severedActionIds: [1] },
      ],
    });
    expect(split.canonicalOf('b')).toBe('b');
    expect(split.personOf({ ts: 9, messageId: 'e', anonymousId: 'phone', userId: null })).toBe(
      'a:phone',
    );
  });

  it('refuses a user alias only when both groups were identified before it', () => {
    const alias = (previousId: string, userId: string, ts: number) => ({
      previousId,
      userId,
      ts,
      messageId: `a-${previousId}-${userId}`,
    });
    // p identified from 10, q from 30, r only ever named by aliases.
    const facts: IdentityFacts = {
      users: new Map([
        ['p', user(10)],
        ['q', user(30)],
        ['r', { firstTs: 5, firstMessageId: 'f5', identifiedAt: null }],
      ]),
      pairs: [],
      aliases: [alias('p', 'q', 20), alias('r', 'p', 40)],
      actions: [],
    };
    // At 20 q was not identified yet: p and q merge. r never is: it joins at 40.
    const later = resolveIdentity(facts);
    expect(later.refused).toEqual([]);
    expect(later.usersOf(later.canonicalOf('r'))).toHaveLength(3);

    // Identified at 15 instead, q was known before the alias at 20: refused.
    const users = new Map(facts.users).set('q', user(15));
    const earlier = resolveIdentity({ ...facts, users });
    expect(earlier.refused).toEqual([
      { messageId: 'a-p-q', reason: 'alias_refused_identified_users' },
    ]);
    expect(earlier.canonicalOf('q')).toBe('q');
  });

  it('severs by event time up to a split, whatever is stored, and keeps later links', () => {
    const split = (target: { anonymousId: string } | { userId: string }, until: number) => ({
      id: 9,
      kind: 'split' as const,
      target,
      until,
      // Recorded when nothing of the device or user was stored yet: the time alone decides.
      severedMessageIds: [],
      severedActionIds: [],
    });
    const facts: IdentityFacts = {
      users: new Map([
        ['u', user(0)],
        ['v', user(1, false)],
      ]),
      pairs: [link('d', 'u', 10), link('d', 'u', 50)],
      aliases: [{ previousId: 'u', userId: 'v', ts: 40, messageId: 'a-u-v' }],
      actions: [],
    };
    const device = resolveIdentity({ ...facts, actions: [split({ anonymousId: 'd' }, 30)] });
    // The link at 10 is cut; the one at 50, after the split's time, applies as usual.
    expect(device.ignored).toEqual([{ messageId: 'l-d-10', reason: 'severed_by_split' }]);
    const at = (ts: number) => ({ ts, messageId: 'e', anonymousId: 'd', userId: null });
    expect([device.personOf(at(20)), device.personOf(at(60))]).toEqual(['u:u', 'u:u']);
    expect(device.deviceLinks.get('d')?.map((l) => l.ts)).toEqual([50]);

    // A user split at 45 cuts the alias at 40 (v is not identified, so it would merge).
    expect(resolveIdentity(facts).canonicalOf('v')).toBe('u');
    const cut = resolveIdentity({ ...facts, actions: [split({ userId: 'v' }, 45)] });
    expect(cut.canonicalOf('v')).toBe('v');
    expect(
      resolveIdentity({ ...facts, actions: [split({ userId: 'v' }, 35)] }).canonicalOf('v'),
    ).toBe('u');
  });
});
