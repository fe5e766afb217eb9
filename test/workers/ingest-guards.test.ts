/**
 * Limits and guards of the public beacon path, through the real Worker: body and event size,
 * gzip, hostile keys, broken text, nesting, timestamps, message ids and the ingest cases of
 * ../shared/cases/edge-cases.md (C02, C04, C06, C07, C08, C10, C27, C32).
 */
import { env, SELF } from 'cloudflare:test';
import { MAX_STRING_BYTES, truncateText, utf8Length } from '../../src/ingest/guards';
import { ADMIN, counts, ingest, report, seedSite, settle, track, type TestSite } from './helpers';

const BASE = 'https://goalstep.test';
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

interface Row {
  message_id: string;
  event: string | null;
  ts: number;
  properties: string | null;
  context: string | null;
}

/** The site's events as D1 holds them, once the site object has copied what it took. */
async function rows(siteId: string): Promise<Row[]> {
  await settle({ siteId });
  const { results } = await env.DB.prepare(
    'SELECT message_id, event, ts, properties, context FROM events WHERE site_id = ? ORDER BY ts',
  )
    .bind(siteId)
    .all<Row>();
  return results;
}

async function rejectedRows(siteId: string) {
  const { results } = await env.DB.prepare(
    `SELECT code, disposition, rule, message_id, raw FROM rejected_events WHERE site_id = ?
     ORDER BY id`,
  )
    .bind(siteId)
    .all<{
      code: string;
      disposition: string;
      rule: string | null;
      message_id: string | null;
      raw: string | null;
    }>();
  return results;
}

function post(site: TestSite, body: BodyInit, headers: Record<string, string> = {}) {
  return SELF.fetch(`${BASE}/v1/batch`, {
    method: 'POST',
    headers: { Authorization: `Basic ${btoa(`${site.writeKey}:`)}`, ...headers },
    body,
  });
}

async function gzip(text: string): Promise<ArrayBuffer> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Response(stream).arrayBuffer();
}

describe('body limits', () => {
  it('answers 413 for a body over 500 KB and stores nothing from it', async () => {
    const site = await seedSite('limit-body', ['view']);
    const batch = Array.from({ length: 30 }, (_, i) => ({
      ...track('view', { anonymousId: `big-${i}` }, `big-m${i}`, ago(1000)),
      properties: { filler: 'y'.repeat(20_000) },
    }));
    const res = await ingest(site, { batch });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ code: 'body_too_large' });
    expect(await rows(site.siteId)).toHaveLength(0);
    expect(await rejectedRows(site.siteId)).toHaveLength(0);
  });

  it('accepts a gzip-encoded body', async () => {
    const site = await seedSite('limit-gzip', ['view']);
    const body = JSON.stringify({
      batch: [track('view', { anonymousId: 'gz' }, 'gz-m1', ago(1000))],
    });
    const res = await post(site, await gzip(body), {
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 1 });
  });

  it('refuses a gzip body that inflates past 500 KB (413) and stores nothing', async () => {
    const site = await seedSite('limit-bomb', ['view']);
    const huge = JSON.stringify({
      batch: [
        { ...track('view', { anonymousId: 'bomb' }, 'bomb-m1', ago(1000)), p: 'z'.repeat(600_000) },
      ],
    });
    const compressed = await gzip(huge);
    expect(compressed.byteLength).toBeLessThan(10_000);
    const res = await post(site, compressed, { 'Content-Encoding': 'gzip' });
    expect(res.status).toBe(413);
    expect(await rows(site.siteId)).toHaveLength(0);
  });

  it('answers 400 with a reason for corrupt gzip and 415 for an unknown encoding', async () => {
    const site = await seedSite('limit-enc', ['view']);
    const corrupt = await post(site, new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4]), {
      'Content-Encoding': 'gzip',
    });
    expect(corrupt.status).toBe(400);
    expect(await corrupt.json()).toMatchObject({ code: 'invalid_encoding' });
    const brotli = await post(site, 'x', { 'Content-Encoding': 'br' });
    expect(brotli.status).toBe(415);
  });
});

describe('payload sizes (C08)', () => {
  it('rejects an event over 32 KB by index, keeps it, stores 50 properties intact', async () => {
    const site = await seedSite('c08', ['form_submitted']);
    const fifty = Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [`p${String(i + 1).padStart(2, '0')}`, i + 1]),
    );
    const res = await ingest(site, {
      batch: [
        {
          ...track('form_submitted', { anonymousId: 'anon-c08' }, 'c08-m1', ago(3000)),
          properties: { form: 'contact' },
        },
        {
          ...track('form_submitted', { anonymousId: 'anon-c08' }, 'c08-m2', ago(2000)),
          properties: { notes: 'x'.repeat(40_000) },
        },
        {
          ...track('form_submitted', { anonymousId: 'anon-c08' }, 'c08-m3', ago(1000)),
          properties: fifty,
        },
      ],
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      accepted: number;
      rejected: Array<{ index: number; code: string; message: string }>;
    };
    expect(body.accepted).toBe(2);
    expect(body.rejected).toHaveLength(1);
    expect(body.rejected[0]).toMatchObject({ index: 1, code: 'event_too_large' });
    expect(body.rejected[0]?.message).toContain('32768');

    const stored = await rows(site.siteId);
    expect(stored.map((r) => r.message_id)).toEqual(['c08-m1', 'c08-m3']);
    expect(Object.keys(JSON.parse(stored[1]?.properties ?? '{}'))).toHaveLength(50);
    const kept = await rejectedRows(site.siteId);
    expect(kept).toMatchObject([{ code: 'event_too_large', message_id: 'c08-m2' }]);
    // The payload is kept capped at 8 KB.
    expect(utf8Length(kept[0]?.raw ?? '')).toBeLessThanOrEqual(8192);
  });
});

describe('hostile keys and text (C27)', () => {
  it('keeps __proto__ and constructor as literal keys, pollutes nothing, binds SQL', async () => {
    const site = await seedSite('c27', ['order_placed']);
    const res = await ingest(
      site,
      `{"batch":[{"type":"track","event":"x'); DROP TABLE events;--","anonymousId":"anon-c27b",
        "messageId":"c27-m2","timestamp":"${ago(1000)}","properties":{"__proto__":{"isAdmin":true},
        "constructor":{"prototype":{"polluted":"yes"}},
        "<img src=x onerror=alert(1)>":"<script>alert(1)</script>"}}]}`,
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 1 });

    const [row] = await rows(site.siteId);
    expect(row?.event).toBe("x'); DROP TABLE events;--");
    const properties = row?.properties ?? '';
    expect(properties).toContain('"__proto__":{"isAdmin":true}');
    expect(properties).toContain('"constructor":{"prototype":{"polluted":"yes"}}');
    expect(properties).toContain('"<img src=x onerror=alert(1)>":"<script>alert(1)</script>"');
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await env.DB.prepare('SELECT COUNT(*) AS n FROM events').first('n')).toBeGreaterThan(0);
  });

  it('replaces broken UTF-8 bytes and half an emoji with U+FFFD and says so', async () => {
    const site = await seedSite('utf8', ['view']);
    const prefix = new TextEncoder().encode(
      `{"batch":[{"type":"track","event":"view","anonymousId":"u8","messageId":"u8-m1",` +
        `"timestamp":"${ago(1000)}","properties":{"bytes":"a`,
    );
    // 0xF0 0x9F is the first half of a 4-byte emoji; 0xFF is never valid UTF-8.
    const broken = new Uint8Array([0xf0, 0x9f, 0x62, 0xff]);
    const suffix = new TextEncoder().encode(`","half":"b\\ud83dc"}}]}`);
    const body = new Uint8Array([...prefix, ...broken, ...suffix]);
    const res = await post(site, body, { 'Content-Type': 'application/json' });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { accepted: number; warnings: Array<{ code: string }> };
    expect(answer.accepted).toBe(1);
    expect(answer.warnings.map((w) => w.code)).toContain('invalid_unicode_replaced');

    const props = JSON.parse((await rows(site.siteId))[0]?.properties ?? '{}') as Record<
      string,
      string
    >;
    expect(props.bytes).toBe('a\uFFFDb\uFFFD');
    expect(props.half).toBe('b\uFFFDc');

    // Broken bytes alone, with no escaped half emoji, are flagged as well (review finding).
    const onlyBytes = new Uint8Array([
      ...new TextEncoder().encode(
        `{"batch":[{"type":"track","event":"view","anonymousId":"u8","messageId":"u8-m2",` +
          `"timestamp":"${ago(900)}","properties":{"bytes":"a`,
      ),
      0xf0,
      0x9f,
      0x98,
      ...new TextEncoder().encode(`"}}]}`),
    ]);
    const second = await post(site, onlyBytes, { 'Content-Type': 'application/json' });
    const warned = (await second.json()) as { warnings: Array<{ code: string }> };
    expect(warned.warnings.map((w) => w.code)).toEqual(['invalid_unicode_replaced']);
  });

  it('says when it repairs or cuts a key, and when two keys then become one', async () => {
    const site = await seedSite('keys', ['view']);
    // Raw JSON text: lone surrogates written as escapes, as a broken client sends them.
    const long = 'k'.repeat(300);
    const event = (id: string, props: string) =>
      `{"type":"track","event":"view","anonymousId":"kk","messageId":"${id}",` +
      `"timestamp":"${ago(1000)}","properties":${props}}`;
    const send = async (id: string, props: string) => {
      const res = await post(site, `{"batch":[${event(id, props)}]}`, {
        'Content-Type': 'application/json',
      });
      expect(res.status).toBe(200);
      return ((await res.json()) as { warnings: Array<{ code: string }> }).warnings.map(
        (w) => w.code,
      );
    };
    expect(await send('k1', '{"lone\\ud800key":"v"}')).toEqual(['invalid_unicode_replaced']);
    expect(await send('k2', `{"${long}":"v"}`)).toEqual(['key_truncated']);
    // Three keys that are one once repaired: the last value is kept, and the loss is said.
    expect(await send('k3', '{"a\\ud800":"first","a\\udc00":"second","a\\ufffd":"third"}')).toEqual(
      ['invalid_unicode_replaced', 'keys_merged'],
    );
    expect(await send('k4', `{"${long}a":"first","${long}b":"second"}`)).toEqual([
      'key_truncated',
      'keys_merged',
    ]);
    const stored = (await rows(site.siteId)).map(
      (row) => JSON.parse(row.properties ?? '{}') as Record<string, string>,
    );
    expect(stored).toContainEqual({ 'lone\uFFFDkey': 'v' });
    expect(stored).toContainEqual({ ['k'.repeat(255)]: 'v' });
    expect(stored).toContainEqual({ 'a\uFFFD': 'third' });
    expect(stored).toContainEqual({ ['k'.repeat(255)]: 'second' });
  });

  it('truncates long text on code-point boundaries, never inside an emoji', async () => {
    expect(truncateText('ab😀', 5)).toBe('ab');
    expect(truncateText('ab😀', 6)).toBe('ab😀');
    expect(truncateText('é'.repeat(10), 5)).toBe('éé');

    const site = await seedSite('trunc', ['view']);
    const longName = '😀'.repeat(100);
    const res = await ingest(site, {
      batch: [
        {
          ...track(longName, { anonymousId: 'tr' }, 'tr-m1', ago(1000)),
          properties: { note: `x${'😀'.repeat(3000)}` },
        },
      ],
    });
    const answer = (await res.json()) as { accepted: number; warnings: Array<{ code: string }> };
    expect(answer.accepted).toBe(1);
    expect(answer.warnings.map((w) => w.code).sort()).toEqual([
      'event_name_truncated',
      'string_truncated',
    ]);
    const [row] = await rows(site.siteId);
    // 255 bytes hold 63 whole 4-byte emoji.
    expect(row?.event).toBe('😀'.repeat(63));
    const note = (JSON.parse(row?.properties ?? '{}') as { note: string }).note;
    expect(utf8Length(note)).toBeLessThanOrEqual(MAX_STRING_BYTES);
    expect(note).toBe(`x${'😀'.repeat(((MAX_STRING_BYTES - 1) / 4) | 0)}`);
  });

  it('caps nesting at 8 levels with a warning, however deep the input', async () => {
    const site = await seedSite('nest', ['view']);
    let deep: unknown = 'leaf';
    for (let i = 0; i < 12; i += 1) deep = { d: deep };
    const nested = (levels: number) => `${'['.repeat(levels)}"x"${']'.repeat(levels)}`;
    const event = (id: string, a: string) =>
      `{"type":"track","event":"view","anonymousId":"nest","messageId":"${id}",` +
      `"timestamp":"${ago(1000)}","properties":{"a":${a}}}`;
    const text =
      `{"batch":[${JSON.stringify({ ...track('view', { anonymousId: 'nest' }, 'nest-m1', ago(2000)), properties: deep })},` +
      `${event('nest-m2', nested(10_000))},${event('nest-m3', nested(100_000))}]}`;
    const res = await ingest(site, text);
    expect(res.status).toBe(200);
    const answer = (await res.json()) as {
      accepted: number;
      rejected: Array<{ index: number; code: string }>;
      warnings: Array<{ index: number; code: string }>;
    };
    expect(answer.accepted).toBe(2);
    expect(answer.warnings).toContainEqual(
      expect.objectContaining({ index: 0, code: 'nesting_capped' }),
    );
    expect(answer.warnings).toContainEqual(
      expect.objectContaining({ index: 1, code: 'nesting_capped' }),
    );
    // 100 000 levels are 200 KB of brackets: over the per-event limit, refused by index.
    expect(answer.rejected).toMatchObject([{ index: 2, code: 'event_too_large' }]);

    // The event is level 0 and properties level 1; the object at level 8 became null.
    const stored = await rows(site.siteId);
    let level = JSON.parse(stored.find((r) => r.message_id === 'nest-m1')?.properties ?? '{}') as {
      d?: unknown;
    };
    let depth = 1;
    while (level && typeof level.d === 'object' && level.d !== null) {
      level = level.d as { d?: unknown };
      depth += 1;
    }
    expect(depth).toBe(7);
    expect(level.d).toBeNull();
  });
});

describe('timestamps', () => {
  it('reads ISO with or without offset and epoch s or ms as the same instant', async () => {
    const site = await seedSite('ts-forms', ['view']);
    const instant = Math.floor((Date.now() - 3_600_000) / 1000) * 1000;
    const iso = new Date(instant).toISOString();
    const plus2 = new Date(instant + 7_200_000).toISOString().replace('Z', '+02:00');
    const res = await ingest(site, {
      batch: [
        { ...track('view', { anonymousId: 'tf' }, 'tf-1', iso) },
        { ...track('view', { anonymousId: 'tf' }, 'tf-2', iso.replace('Z', '')) },
        { ...track('view', { anonymousId: 'tf' }, 'tf-3', plus2) },
        {
          type: 'track',
          event: 'view',
          anonymousId: 'tf',
          messageId: 'tf-4',
          timestamp: instant / 1000,
        },
        { type: 'track', event: 'view', anonymousId: 'tf', messageId: 'tf-5', timestamp: instant },
      ],
    });
    expect(await res.json()).toMatchObject({ accepted: 5, rejected: [] });
    expect(new Set((await rows(site.siteId)).map((r) => r.ts))).toEqual(new Set([instant]));
  });

  it('rejects dates that do not exist and clocks set to 2099 without a sentAt', async () => {
    const site = await seedSite('ts-bad', ['view']);
    const res = await ingest(site, {
      batch: [
        track('view', { anonymousId: 'tb' }, 'tb-1', '2025-02-30T10:00:00Z'),
        track('view', { anonymousId: 'tb' }, 'tb-2', '03/03/2025'),
        track('view', { anonymousId: 'tb' }, 'tb-3', '2099-01-01T00:00:00Z'),
        track('view', { anonymousId: 'tb' }, 'tb-4', ago(1000)),
      ],
    });
    const answer = (await res.json()) as {
      accepted: number;
      rejected: Array<{ index: number; code: string }>;
    };
    expect(answer.accepted).toBe(1);
    expect(answer.rejected.map((r) => [r.index, r.code])).toEqual([
      [0, 'invalid_timestamp'],
      [1, 'invalid_timestamp'],
      [2, 'timestamp_too_far_ahead'],
    ]);
    expect((await rejectedRows(site.siteId)).map((r) => r.message_id)).toEqual([
      'tb-1',
      'tb-2',
      'tb-3',
    ]);
  });

  it('corrects a clock ahead by sentAt, clamps past it, rejects the too old (C10)', async () => {
    const site = await seedSite('c10', ['app_opened']);
    const before = Date.now();
    const res = await ingest(site, {
      batch: [
        {
          ...track(
            'app_opened',
            { anonymousId: 'anon-c10a' },
            'c10-m1',
            '2031-01-01T00:00:00.000Z',
          ),
          sentAt: '2031-01-01T00:00:02.000Z',
        },
        {
          ...track('app_opened', { anonymousId: 'anon-c10b' }, 'c10-m2', ago(-14 * 86_400_000)),
          sentAt: ago(1000),
        },
        {
          ...track(
            'app_opened',
            { anonymousId: 'anon-c10c' },
            'c10-m3',
            '2019-06-01T00:00:00.000Z',
          ),
          sentAt: ago(1000),
        },
      ],
    });
    const after = Date.now();
    const answer = (await res.json()) as {
      accepted: number;
      rejected: Array<{ index: number; code: string }>;
      warnings: Array<{ index: number; code: string }>;
    };
    expect(answer.accepted).toBe(2);
    expect(answer.rejected).toMatchObject([{ index: 2, code: 'timestamp_too_old' }]);
    expect(answer.warnings).toContainEqual(
      expect.objectContaining({ index: 0, code: 'clock_skew_corrected' }),
    );
    expect(answer.warnings).toContainEqual(
      expect.objectContaining({ index: 1, code: 'timestamp_after_sent_at' }),
    );
    const stored = await rows(site.siteId);
    // c10-m1 was 2 s before its sentAt; the server received it between `before` and `after`.
    const m1 = stored.find((r) => r.message_id === 'c10-m1');
    expect(m1?.ts).toBeGreaterThanOrEqual(before - 2000);
    expect(m1?.ts).toBeLessThanOrEqual(after - 2000);
    for (const row of stored) expect(row.ts).toBeLessThanOrEqual(after);
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2]);
  });

  it('keeps one device in order when one batch stalls in transit (C02)', async () => {
    const site = await seedSite('c02', ['cart_viewed', 'checkout_started']);
    // Batch 1 was sent 30 s ago and arrives now; batch 2 was sent just now.
    await ingest(site, {
      sentAt: ago(30_000),
      batch: [track('cart_viewed', { anonymousId: 'anon-c02' }, 'c02-m1', ago(31_000))],
    });
    await ingest(site, {
      sentAt: ago(100),
      batch: [track('checkout_started', { anonymousId: 'anon-c02' }, 'c02-m2', ago(1100))],
    });
    const stored = await rows(site.siteId);
    expect(stored.map((r) => r.message_id)).toEqual(['c02-m1', 'c02-m2']);
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
  });
});

describe('message ids', () => {
  it('keeps a client messageId verbatim and stores a retry once (C04)', async () => {
    const site = await seedSite('c04', ['trial_started']);
    const event = track('trial_started', { userId: 'user-c04' }, ' c04-fixed-id/ü ', ago(60_000));
    const first = await ingest(site, { batch: [{ ...event, sentAt: ago(59_500) }] });
    expect(await first.json()).toMatchObject({ accepted: 1, duplicates: 0 });
    const second = await ingest(site, { batch: [{ ...event, sentAt: ago(30_000) }] });
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await rows(site.siteId)).map((r) => r.message_id)).toEqual([' c04-fixed-id/ü ']);
  });

  it('derives an id from content when none is sent, so a retry still dedupes', async () => {
    const site = await seedSite('noid', ['view']);
    const event = { type: 'track', event: 'view', anonymousId: 'nid', timestamp: ago(5000) };
    const first = (await (await ingest(site, { batch: [event], sentAt: ago(4000) })).json()) as {
      accepted: number;
      warnings: Array<{ code: string }>;
    };
    expect(first.accepted).toBe(1);
    expect(first.warnings.map((w) => w.code)).toEqual(['message_id_assigned']);
    const again = await ingest(site, { batch: [{ ...event, sentAt: ago(1000) }] });
    expect(await again.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    // A different event without an id is a different event.
    const other = await ingest(site, { batch: [{ ...event, timestamp: ago(3000) }] });
    expect(await other.json()).toMatchObject({ accepted: 1 });
    expect(await rows(site.siteId)).toHaveLength(2);
  });

  it('rejects a messageId that is not a string or is over 200 characters', async () => {
    const site = await seedSite('badid', ['view']);
    const res = await ingest(site, {
      batch: [
        { type: 'track', event: 'view', anonymousId: 'b', messageId: 42, timestamp: ago(1000) },
        {
          type: 'track',
          event: 'view',
          anonymousId: 'b',
          messageId: 'm'.repeat(201),
          timestamp: ago(1000),
        },
      ],
    });
    expect(res.status).toBe(400);
    const answer = (await res.json()) as {
      code: string;
      rejected: Array<{ code: string; path: string }>;
    };
    expect(answer.code).toBe('no_valid_events');
    expect(answer.rejected).toMatchObject([
      { code: 'invalid_field', path: 'messageId' },
      { code: 'invalid_field', path: 'messageId' },
    ]);
  });
});

describe('batches and bodies (C06, C07, C32)', () => {
  it('keeps a rejected event with its reason, the rest once on retry (C06)', async () => {
    const site = await seedSite('c06b', ['pricing_viewed', 'plan_selected']);
    const batch = {
      batch: [
        track('pricing_viewed', { anonymousId: 'anon-c06' }, 'c06-m1', ago(3000)),
        track('', { anonymousId: 'anon-c06' }, 'c06-m2', ago(2000)),
        track('plan_selected', { anonymousId: 'anon-c06' }, 'c06-m3', ago(1000)),
      ],
    };
    await ingest(site, batch);
    await ingest(site, batch);
    expect((await rows(site.siteId)).map((r) => r.message_id)).toEqual(['c06-m1', 'c06-m3']);
    // The retry files the rejected event once more only in its answer, not in the table.
    const kept = await rejectedRows(site.siteId);
    expect(kept.map((r) => [r.code, r.message_id])).toEqual([['missing_event_name', 'c06-m2']]);
  });

  it('parses a text/plain beacon, echoes the exact origin in the preflight (C07)', async () => {
    const site = await seedSite('c07', ['cta_clicked']);
    const beacon = await post(
      site,
      JSON.stringify({
        batch: [
          {
            type: 'page',
            anonymousId: 'anon-c07',
            messageId: 'c07-m1',
            timestamp: ago(3000),
            properties: { path: '/pricing' },
          },
        ],
      }),
      { 'Content-Type': 'text/plain;charset=UTF-8', Origin: 'https://shop.example' },
    );
    expect(beacon.status).toBe(200);
    expect(beacon.headers.get('Access-Control-Allow-Origin')).toBe('https://shop.example');

    const preflight = await SELF.fetch(`${BASE}/v1/batch`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://shop.example',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type',
      },
    });
    expect(preflight.headers.get('Access-Control-Allow-Origin')).toBe('https://shop.example');
    expect(preflight.headers.get('Access-Control-Allow-Credentials')).toBe('true');
    expect(preflight.headers.get('Access-Control-Allow-Headers')?.toLowerCase()).toContain(
      'content-type',
    );

    const json = await post(
      site,
      JSON.stringify({
        batch: [track('cta_clicked', { anonymousId: 'anon-c07' }, 'c07-m2', ago(1000))],
      }),
      { 'Content-Type': 'application/json', Origin: 'https://shop.example' },
    );
    expect(json.status).toBe(200);
    expect(await rows(site.siteId)).toHaveLength(2);

    const notJson = await post(site, 'hello there', { 'Content-Type': 'text/plain' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ code: 'invalid_json' });
  });

  it("stores 15 events (15 × 14 values) within D1's parameter limit (C32)", async () => {
    const site = await seedSite('c32', ['step_1']);
    const batch = Array.from({ length: 15 }, (_, i) => {
      const n = String(i + 1).padStart(2, '0');
      return track('step_1', { anonymousId: `anon-c32-${n}` }, `c32-m${n}`, ago(20_000 - i * 1000));
    });
    const res = await ingest(site, { batch });
    expect(await res.json()).toMatchObject({ accepted: 15 });
    expect(await rows(site.siteId)).toHaveLength(15);
  });
});

describe('unusable bodies', () => {
  it('answers 400 with a stable code for each kind of unusable body', async () => {
    const site = await seedSite('unusable', ['view']);
    const cases: Array<[string, string]> = [
      ['{"batch": [', 'invalid_json'],
      ['[1, 2]', 'invalid_body'],
      ['{"batch": []}', 'empty_batch'],
      ['{"events": []}', 'invalid_body'],
      ['', 'empty_body'],
    ];
    for (const [body, code] of cases) {
      const res = await post(site, body, { 'Content-Type': 'application/json' });
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ code });
    }
  });
});

export { ADMIN };
