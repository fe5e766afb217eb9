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
});
