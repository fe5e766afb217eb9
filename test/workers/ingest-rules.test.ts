/** Pure ingest rules: time parsing, clock skew (C02, C10) and per-event validation. */
import { normalizeEvent, type NormalizeOptions } from '../../src/ingest/normalize';
import { parseTimestamp, resolveEventTime } from '../../src/ingest/timestamps';
import { ratio } from '../../src/report/metrics';
import { resolveRange } from '../../src/report/range';

const ms = (iso: string) => Date.parse(iso);

describe('parseTimestamp', () => {
  it('reads ISO 8601 with and without offsets and epoch seconds or milliseconds', () => {
    expect(parseTimestamp('2025-03-03T10:00:00.000Z')).toBe(ms('2025-03-03T10:00:00.000Z'));
    expect(parseTimestamp('2025-03-03T12:00:00+02:00')).toBe(ms('2025-03-03T10:00:00.000Z'));
    expect(parseTimestamp('2025-03-03T10:00:00')).toBe(ms('2025-03-03T10:00:00.000Z'));
    expect(parseTimestamp(1741000000)).toBe(1741000000000);
    expect(parseTimestamp(1741000000123)).toBe(1741000000123);
  });

  it('refuses to guess anything else', () => {
    for (const bad of ['March 3', '03/03/2025', '', 'null', -5, Number.NaN, {}]) {
      expect(parseTimestamp(bad)).toBeNull();
    }
  });
});

describe('resolveEventTime', () => {
  it('does not fold network delay into event time (C02)', () => {
    const stalled = resolveEventTime({
      timestamp: ms('2025-03-03T10:00:05.000Z'),
      sentAt: ms('2025-03-03T10:00:06.000Z'),
      receivedAt: ms('2025-03-03T10:00:36.000Z'),
    });
    expect(stalled.ts).toBe(ms('2025-03-03T10:00:05.000Z'));
    const fast = resolveEventTime({
      timestamp: ms('2025-03-03T10:00:08.000Z'),
      sentAt: ms('2025-03-03T10:00:09.000Z'),
      receivedAt: ms('2025-03-03T10:00:09.100Z'),
    });
    expect(fast.ts).toBeGreaterThan(stalled.ts);
  });

  it('corrects a clock years ahead using sentAt (C10)', () => {
    const result = resolveEventTime({
      timestamp: ms('2031-01-01T00:00:00.000Z'),
      sentAt: ms('2031-01-01T00:00:02.000Z'),
      receivedAt: ms('2025-03-03T10:00:00.000Z'),
    });
    expect(result.ts).toBe(ms('2025-03-03T09:59:58.000Z'));
    expect(result.warnings.map((w) => w.code)).toEqual(['clock_skew_corrected']);
  });

  it('says a small clock difference in milliseconds, not "0 s" (review finding)', () => {
    const small = resolveEventTime({
      timestamp: ms('2025-03-03T10:00:00.000Z'),
      sentAt: ms('2025-03-03T10:00:00.400Z'),
      receivedAt: ms('2025-03-03T10:00:00.100Z'),
    });
    expect(small.warnings[0]?.message).toBe('client clock off by 300 ms; corrected using sentAt');
    // 2031-01-01T00:00:02Z − 2025-03-03T10:00:00Z = 2,129 days 14:00:02 = 183,996,002 s.
    const large = resolveEventTime({
      timestamp: ms('2031-01-01T00:00:00.000Z'),
      sentAt: ms('2031-01-01T00:00:02.000Z'),
      receivedAt: ms('2025-03-03T10:00:00.000Z'),
    });
    expect(large.warnings[0]?.message).toBe(
      'client clock off by 183996002 s; corrected using sentAt',
    );
  });

  it('clamps a time after its own sentAt and flags it (C10)', () => {
    const result = resolveEventTime({
      timestamp: ms('2025-03-17T10:00:00.000Z'),
      sentAt: ms('2025-03-03T09:59:59.000Z'),
      receivedAt: ms('2025-03-03T10:00:00.000Z'),
    });
    expect(result.ts).toBeLessThanOrEqual(ms('2025-03-03T10:00:00.000Z'));
    expect(result.warnings.map((w) => w.code)).toContain('timestamp_after_sent_at');
  });
});

describe('normalizeEvent', () => {
  const options: NormalizeOptions = {
    receivedAt: ms('2025-03-03T10:00:00.000Z'),
    batchSentAt: undefined,
    batchContext: null,
    requestUserAgent: 'UA/1',
    requestCountry: 'DE',
    oldestAllowed: ms('2025-02-24T10:00:00.000Z'),
    retainedFrom: null,
    impliedType: null,
  };

  it('rejects an event older than the back-fill window on a write key (C10)', () => {
    const result = normalizeEvent(
      {
        type: 'track',
        event: 'app_opened',
        anonymousId: 'anon-c10c',
        timestamp: '2019-06-01T00:00:00.000Z',
      },
      options,
    );
    expect(result).toMatchObject({ ok: false, rejection: { code: 'timestamp_too_old' } });
  });

  it('rejects an event with no usable id and drops placeholder ids with a warning', () => {
    expect(normalizeEvent({ type: 'track', event: 'x' }, options)).toMatchObject({
      ok: false,
      rejection: { code: 'missing_identity' },
    });
    const junk = normalizeEvent(
      { type: 'identify', anonymousId: 'anon-1', userId: 'undefined' },
      options,
    );
    expect(junk).toMatchObject({ ok: true, event: { userId: null, anonymousId: 'anon-1' } });
    expect(junk.ok && junk.warnings.map((w) => w.code)).toEqual(['junk_id_dropped']);

    // The reason names dropped ids only when ids were dropped, not for any other warning.
    const message = (input: Record<string, unknown>) => {
      const result = normalizeEvent({ type: 'track', ...input }, options);
      return result.ok ? null : result.rejection.message;
    };
    expect(message({ event: 'x\ud800' })).toBe('event has no usable anonymousId or userId');
    expect(message({ event: 'x', anonymousId: 'null' })).toBe(
      'event has no usable anonymousId or userId (its ids were placeholders or too long)',
    );
  });

  it('fills user agent and country from the request and never keeps the client address', () => {
    const result = normalizeEvent(
      { type: 'track', event: 'x', anonymousId: 'a', context: { ip: '203.0.113.9' } },
      options,
    );
    expect(result.ok && result.event.context).toEqual({
      userAgent: 'UA/1',
      location: { country: 'DE' },
    });
  });

  it('rejects an event over 32 KB by itself', () => {
    const result = normalizeEvent(
      { type: 'track', event: 'x', anonymousId: 'a', properties: { notes: 'x'.repeat(40_000) } },
      options,
    );
    expect(result).toMatchObject({ ok: false, rejection: { code: 'event_too_large' } });
  });
});

describe('report arithmetic', () => {
  it('rounds ratios half away from zero to 4 decimals and leaves 0/0 empty', () => {
    expect(ratio(1, 8)).toBe(0.125);
    expect(ratio(1, 3)).toBe(0.3333);
    expect(ratio(2, 3)).toBe(0.6667);
    expect(ratio(12345, 100000)).toBe(0.1235);
    expect(ratio(0, 0)).toBeNull();
  });

  it('reads a date as midnight in the report time zone, across a DST change', () => {
    const range = resolveRange({ from: '2025-03-30', to: '2025-03-31', tz: 'Europe/Berlin' }, 0);
    // Berlin is UTC+1 on 30 March until 02:00 local, so that midnight is 23:00 UTC the day before.
    expect(new Date(range.from).toISOString()).toBe('2025-03-29T23:00:00.000Z');
    // The next midnight is already in summer time (UTC+2): a 23-hour day.
    expect(new Date(range.to).toISOString()).toBe('2025-03-30T22:00:00.000Z');
  });
});

describe('hostile shapes (review findings)', () => {
  const options: NormalizeOptions = {
    receivedAt: ms('2025-03-03T10:00:00.000Z'),
    batchSentAt: undefined,
    batchContext: null,
    requestUserAgent: null,
    requestCountry: null,
    oldestAllowed: null,
    retainedFrom: null,
    impliedType: null,
  };

  it('keeps an event nested 3,000 deep with its deep values capped, never overflowing', () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 3000; i += 1) deep = { a: deep };
    const result = normalizeEvent(
      { type: 'track', event: 'x', anonymousId: 'a', properties: deep },
      options,
    );
    expect(result.ok).toBe(true);
    expect(result.ok && result.warnings.map((w) => w.code)).toContain('nesting_capped');
    // What is stored can be serialised again, by this Worker and by the site's object.
    expect(() => JSON.stringify(result.ok && result.event.properties)).not.toThrow();
  });

  it('refuses impossible calendar dates and implausible years instead of rolling them over', () => {
    expect(parseTimestamp('2025-02-30T10:00:00Z')).toBeNull();
    expect(parseTimestamp('2025-13-01')).toBeNull();
    expect(parseTimestamp('0001-01-01T00:00:00Z')).toBeNull();
    expect(() => resolveRange({ from: '2025-13-01', to: '2026-02-01' }, 0)).toThrow(/real date/);
    expect(() => resolveRange({ from: '2025-02-30', to: '2025-03-05' }, 0)).toThrow(/real date/);
  });

  it('rejects a group call without a groupId and explains a missing type', () => {
    expect(normalizeEvent({ type: 'group', anonymousId: 'a' }, options)).toMatchObject({
      ok: false,
      rejection: { code: 'missing_group_id' },
    });
    expect(normalizeEvent({ event: 'x', anonymousId: 'a' }, options)).toMatchObject({
      ok: false,
      rejection: { code: 'invalid_type', message: expect.stringContaining('track, identify') },
    });
  });
});

describe('wall times across clock changes', () => {
  it('reads a time skipped by spring-forward as just after the gap', () => {
    const range = resolveRange(
      { from: '2025-03-09T02:30', to: '2025-03-10', tz: 'America/New_York' },
      0,
    );
    // 02:30 does not exist; with the pre-change offset (UTC-5) it is 07:30Z = 03:30 EDT.
    expect(new Date(range.from).toISOString()).toBe('2025-03-09T07:30:00.000Z');
  });

  it('reads a time that occurs twice as its earlier instant', () => {
    const ny = resolveRange(
      { from: '2025-11-02T01:30', to: '2025-11-03', tz: 'America/New_York' },
      0,
    );
    // 01:30 happens in EDT (05:30Z) and again in EST (06:30Z): the first one counts.
    expect(new Date(ny.from).toISOString()).toBe('2025-11-02T05:30:00.000Z');
    const berlin = resolveRange(
      { from: '2025-10-26T02:30', to: '2025-10-27', tz: 'Europe/Berlin' },
      0,
    );
    // 02:30 happens in CEST (00:30Z) and again in CET (01:30Z).
    expect(new Date(berlin.from).toISOString()).toBe('2025-10-26T00:30:00.000Z');
  });
});

describe('a clock a few seconds ahead', () => {
  it('moves the whole batch by one offset, keeping its order and spacing (review finding)', () => {
    const receivedAt = ms('2025-03-03T10:00:00.000Z');
    // The client clock runs 4 s ahead: it stamps and sends 3 events 1 s apart.
    const sentAt = receivedAt + 4_000;
    const stamps = [sentAt - 2_100, sentAt - 1_100, sentAt - 100];
    const stored = stamps.map(
      (timestamp) => resolveEventTime({ timestamp, sentAt, receivedAt }).ts,
    );
    expect(stored).toEqual([receivedAt - 2_100, receivedAt - 1_100, receivedAt - 100]);
  });
});
