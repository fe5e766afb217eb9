/**
 * The per-isolate memo of user-agent work (src/lib/memo.ts): repeats are answered without
 * recomputing, and the oldest entry goes when it is full.
 */
import { memoize } from '../../src/lib/memo';
import { classifyTraffic } from '../../src/ingest/traffic-filter';

describe('memoize', () => {
  it('computes each key once and forgets the oldest when full', () => {
    const computed: string[] = [];
    const length = memoize((key: string) => {
      computed.push(key);
      return key.length;
    }, 2);
    expect([length('a'), length('bb'), length('a')]).toEqual([1, 2, 1]);
    expect(computed).toEqual(['a', 'bb']);
    length('ccc'); // full: 'a', the oldest, goes
    expect(length('bb')).toBe(2);
    expect(length('a')).toBe(1);
    expect(computed).toEqual(['a', 'bb', 'ccc', 'a']);
  });

  it('answers a key over 1,000 characters without keeping it', () => {
    const computed: string[] = [];
    const size = memoize((key: string) => {
      computed.push(key);
      return key.length;
    });
    const long = 'x'.repeat(1001);
    expect([size(long), size(long), size('x'.repeat(1000)), size('x'.repeat(1000))]).toEqual([
      1001, 1001, 1000, 1000,
    ]);
    expect(computed.map((key) => key.length)).toEqual([1001, 1001, 1000]);
  });

  it('gives the same bot verdict for an agent seen before, naming the rule', () => {
    const facts = {
      requestUserAgent: null,
      fromBrowser: false,
      purpose: null,
      optOut: false,
      honorPrivacySignals: false,
    };
    const agent = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
    const first = classifyTraffic({ ...facts, eventUserAgent: agent });
    expect(first).toMatchObject({ code: 'bot' });
    // The rule is isbot's own pattern that matched, and the message names what it matched.
    expect(first?.rule).toMatch(/google/);
    expect(first?.message).toMatch(/matched the isbot rule for "Google/i);
    expect(classifyTraffic({ ...facts, eventUserAgent: agent })).toEqual(first);
    const browser =
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
      'Chrome/131.0.0.0 Safari/537.36';
    expect(classifyTraffic({ ...facts, eventUserAgent: browser })).toBeNull();
    expect(classifyTraffic({ ...facts, eventUserAgent: browser })).toBeNull();
  });
});
