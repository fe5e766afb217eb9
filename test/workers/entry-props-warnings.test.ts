/**
 * The entry-property budget against an independent model of its documented rule, the key and
 * batch-context warnings, and the missing_identity wording (a review's tests, session 8).
 */
import { SELF } from 'cloudflare:test';
import { attemptRow, ENTRY_PROPS_MAX } from '../../src/funnel/progress-store';
import { segmentOf } from '../../src/funnel/segment';
import { normalizeEvent, type NormalizeOptions } from '../../src/ingest/normalize';
import { seededRandom } from '../../scripts/lib/random.mjs';
import { seedSite } from './helpers';

/** A visitor without context: no segment values. */
const SEGMENT = segmentOf(null);

const row = (properties: Record<string, unknown>, traits: Record<string, unknown> = {}) =>
  attemptRow({
    times: [1],
    reached: 1,
    entry: { messageId: 'm', ts: 1, type: 'track', event: 'a', properties },
    values: [null],
    entryTraits: traits,
    segment: SEGMENT,
  }).entry_props as string | null;

/**
 * Independent model of the documented rule (docs/METRICS.md: "up to 2,000 characters of JSON per
 * attempt, the shortest kept first"): try the scalars from the shortest `"key":value` to the
 * longest (ties in order), keep one iff the whole object, in the original order, stays within
 * the budget.
 */
function model(properties: Record<string, unknown>, traits: Record<string, unknown>) {
  const all: Array<[string, unknown]> = [];
  const bags: Array<[string, Record<string, unknown>]> = [
    ['property', properties],
    ['trait', traits],
  ];
  for (const [prefix, bag] of bags) {
    for (const [key, value] of Object.entries(bag)) {
      if (['string', 'number', 'boolean'].includes(typeof value))
        all.push([`${prefix}:${key}`, value]);
    }
  }
  const size = ([key, value]: [string, unknown]) => JSON.stringify({ [key]: value }).length;
  const order = all.map((_, i) => i).sort((a, b) => size(all[a]!) - size(all[b]!) || a - b);
  const kept = new Set<number>();
  for (const i of order) {
    const trial = Object.fromEntries(all.filter((_, j) => kept.has(j) || j === i));
    if (JSON.stringify(trial).length <= ENTRY_PROPS_MAX) kept.add(i);
  }
  const json = JSON.stringify(Object.fromEntries(all.filter((_, j) => kept.has(j))));
  return json === '{}' ? null : json;
}

describe('entry properties budget', () => {
  it('matches an independent model of the rule on hostile keys and values', () => {
    const random = seededRandom(8);
    const pieces = ['"', '\\', '\n', '\u0001', 'é', '😀', '\ud800', 'a', '\u2028', '</'];
    const text = (max: number) =>
      Array.from({ length: Math.floor(random() * max) }, () =>
        random() < 0.5 ? 'x' : (pieces[Math.floor(random() * pieces.length)] as string),
      ).join('');
    const scalar = () => {
      const r = random();
      if (r < 0.4) return text(r < 0.1 ? 1500 : 120);
      if (r < 0.6) return (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20);
      if (r < 0.7) return random() < 0.5;
      if (r < 0.8) return -Math.floor(random() * 1e6);
      return r < 0.9 ? null : { nested: 1 };
    };
    let saw = 0;
    for (let i = 0; i < 400; i += 1) {
      const bag = () =>
        Object.fromEntries(
          Array.from({ length: Math.floor(random() * 30) }, () => [text(40), scalar()]),
        );
      const properties = bag();
      const traits = bag();
      const json = row(properties, traits);
      expect(json).toBe(model(properties, traits));
      if (json !== null) {
        expect(json.length).toBeLessThanOrEqual(ENTRY_PROPS_MAX);
        expect(() => JSON.parse(json)).not.toThrow();
        const scalars = [...Object.values(properties), ...Object.values(traits)].filter((v) =>
          ['string', 'number', 'boolean'].includes(typeof v),
        ).length;
        if (Object.keys(JSON.parse(json) as object).length < scalars) saw += 1;
      }
    }
    // The budget did bite in some cases (else this test would prove nothing).
    expect(saw).toBeGreaterThan(20);
  });
});

describe('review findings', () => {
  // One long text is left out, not the short values after it (it came first and still fit).
  it('keeps the short values after a long first property', () => {
    const props = { blob: 'x'.repeat(1970), plan: 'pro' };
    const kept = JSON.parse(row(props, { tier: 'gold' }) ?? '{}') as Record<string, unknown>;
    expect(kept['property:plan']).toBe('pro');
    expect(kept['trait:tier']).toBe('gold');
  });

  it('warns when broken UTF-8 bytes in a key became U+FFFD, as it does for a value', async () => {
    const site = await seedSite('r8b-bytes', ['view']);
    const body = new Uint8Array([
      ...new TextEncoder().encode(
        `{"batch":[{"type":"track","event":"view","anonymousId":"b1","messageId":"b1",` +
          `"timestamp":"${new Date(Date.now() - 1000).toISOString()}","properties":{"k`,
      ),
      0xff,
      ...new TextEncoder().encode(`":"v","j`),
      0xfe,
      ...new TextEncoder().encode(`":"w"}}]}`),
    ]);
    const res = await SELF.fetch('https://goalstep.test/v1/batch', {
      method: 'POST',
      headers: {
        Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
        'Content-Type': 'application/json',
      },
      body,
    });
    expect(res.status).toBe(200);
    const codes = ((await res.json()) as { warnings: Array<{ code: string }> }).warnings.map(
      (w) => w.code,
    );
    expect(codes).toContain('invalid_unicode_replaced');
  });

  it('warns for a key of the batch-level context that was cut', async () => {
    const site = await seedSite('r8b-ctx', ['view']);
    const res = await SELF.fetch('https://goalstep.test/v1/batch', {
      method: 'POST',
      headers: {
        Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({
        context: { ['c'.repeat(300)]: 'v', ['c'.repeat(301)]: 'w' },
        batch: [
          {
            type: 'track',
            event: 'view',
            anonymousId: 'c1',
            messageId: 'c1',
            timestamp: new Date(Date.now() - 1000).toISOString(),
          },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const codes = ((await res.json()) as { warnings: Array<{ code: string }> }).warnings.map(
      (w) => w.code,
    );
    expect(codes).toEqual(['key_truncated', 'keys_merged']);
  });

  it('names dropped ids in missing_identity only for anonymousId or userId', () => {
    const options: NormalizeOptions = {
      receivedAt: Date.UTC(2025, 2, 3),
      batchSentAt: undefined,
      batchContext: null,
      requestUserAgent: null,
      requestCountry: null,
      oldestAllowed: null,
      retainedFrom: null,
      impliedType: null,
    };
    const result = normalizeEvent({ type: 'track', event: 'x', previousId: 'null' }, options);
    expect(result.ok ? null : result.rejection.message).toBe(
      'event has no usable anonymousId or userId',
    );
  });
});
