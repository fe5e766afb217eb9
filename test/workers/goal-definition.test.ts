/** Goal definitions that can never count anyone are refused when saved (review findings). */
import { checkDefinition, goalInputSchema } from '../../src/funnel/definition';

const base = { name: 'g', steps: [{ event: 'a' }, { event: 'b' }] };

describe('goal definition checks', () => {
  it('refuses filters that can never match', () => {
    const filter = (where: unknown) =>
      goalInputSchema.safeParse({
        ...base,
        steps: [{ event: 'a' }, { event: 'b', where: [where] }],
      }).success;
    expect(filter({ property: 'n', op: 'gt', value: 'abc' })).toBe(false);
    expect(filter({ property: 'n', op: 'in', value: 'pro' })).toBe(false);
    expect(filter({ property: 'n', op: 'eq' })).toBe(false);
    expect(filter({ property: 'n', op: 'gt', value: 3 })).toBe(true);
    expect(filter({ property: 'n', op: 'set' })).toBe(true);
  });

  it('refuses a zero window', () => {
    expect(goalInputSchema.safeParse({ ...base, window: '0d' }).success).toBe(false);
    expect(goalInputSchema.safeParse({ ...base, window: '1m' }).success).toBe(true);
  });

  it('refuses a window on step 1 and an exclusion that matches a page step', () => {
    const goal = goalInputSchema.parse({
      name: 'g',
      steps: [
        { event: 'a', window: '1h' },
        { type: 'page', path: '/p*' },
      ],
      exclusions: [{ type: 'page', path: '/p*' }],
    });
    expect(
      checkDefinition(goal)
        .map((issue) => issue.code)
        .sort(),
    ).toEqual(['exclusion_is_step', 'window_on_first_step']);
  });

  it('refuses a step whose matchers contradict each other with mixed_step', () => {
    const codes = (step: unknown, exclusions?: unknown[]) =>
      checkDefinition(
        goalInputSchema.parse({ name: 'g', steps: [{ event: 'a' }, step], exclusions }),
      ).map((issue) => [issue.code, issue.path]);
    // An anyOf step ignores its own event, type, path, url and filters.
    expect(codes({ event: 'b', anyOf: [{ event: 'c' }] })).toEqual([['mixed_step', 'steps.1']]);
    expect(codes({ where: [{ property: 'p', op: 'set' }], anyOf: [{ event: 'c' }] })).toEqual([
      ['mixed_step', 'steps.1'],
    ]);
    // A trait step is matched by identify calls only.
    expect(codes({ type: 'page', trait: { property: 'plan', value: 'pro' } })).toEqual([
      ['mixed_step', 'steps.1'],
    ]);
    // A track call has no path or URL, in a step, an anyOf matcher or an exclusion.
    expect(codes({ type: 'track', path: '/p' })).toEqual([['mixed_step', 'steps.1']]);
    expect(codes({ anyOf: [{ event: 'c' }, { type: 'track', url: 'https://x/*' }] })).toEqual([
      ['mixed_step', 'steps.1.anyOf.1'],
    ]);
    expect(codes({ event: 'b' }, [{ type: 'track', path: '/p' }])).toEqual([
      ['mixed_step', 'exclusions.0'],
    ]);
    // What each kind of step may hold is still accepted.
    expect(codes({ anyOf: [{ event: 'c' }, { type: 'page', path: '/p' }] })).toEqual([]);
    expect(codes({ type: 'page', event: 'Pricing', path: '/pricing' })).toEqual([]);
    expect(codes({ trait: { property: 'plan', value: 'pro' }, window: '1d' })).toEqual([]);
  });
});
