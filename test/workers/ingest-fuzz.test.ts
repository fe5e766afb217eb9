/**
 * Property tests through the real Worker (SELF.fetch): random batches built from the ingest
 * schema, each event valid or broken in one known way, and random raw bytes. No answer is a
 * 5xx; every valid event is stored exactly once; every invalid one is answered with its reason
 * and kept in the rejected table.
 */
import { env, SELF } from 'cloudflare:test';
import fc from 'fast-check';
import { fetchWithFaults } from './faults';
import { ingest, seedSite, settle, type TestSite } from './helpers';

/** How each kind of broken event is built, and the reason code it must get. */
const BREAKAGES = {
  missing_event_name: (e: Record<string, unknown>) => ({ ...e, event: '  ' }),
  invalid_timestamp: (e: Record<string, unknown>) => ({ ...e, timestamp: 'yesterday-ish' }),
  timestamp_too_far_ahead: (e: Record<string, unknown>) => ({
    ...e,
    timestamp: '2099-01-01T00:00:00Z',
  }),
  timestamp_too_old: (e: Record<string, unknown>) => ({ ...e, timestamp: '2001-01-01T00:00:00Z' }),
  missing_identity: ({ anonymousId: _a, ...e }: Record<string, unknown>) => e,
  invalid_type: (e: Record<string, unknown>) => ({ ...e, type: 'purchase' }),
  event_too_large: (e: Record<string, unknown>) => ({
    ...e,
    properties: { blob: 'q'.repeat(33_000) },
  }),
} as const;
type Breakage = keyof typeof BREAKAGES;

const key = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'),
);
const properties = fc.dictionary(key, fc.jsonValue({ maxDepth: 4 }), { maxKeys: 8 });
const eventArb = fc.record({
  name: fc.oneof(
    fc.constantFrom('view', 'cart', 'buy'),
    fc.string({ minLength: 1, maxLength: 40 }),
  ),
  anon: fc.string({ minLength: 1, maxLength: 30 }),
  ageMs: fc.integer({ min: 0, max: 5 * 86_400_000 }),
  properties,
  breakage: fc.option(fc.constantFrom(...(Object.keys(BREAKAGES) as Breakage[])), { freq: 3 }),
  duplicate: fc.boolean(),
});

let run = 0;

describe('fuzzing the ingest schema through the Worker', () => {
  let site: TestSite;
  beforeAll(async () => {
    site = await seedSite('fuzz', ['view', 'cart', 'buy']);
  });

  it('stores every valid event once and keeps every invalid one with its reason', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(eventArb, { minLength: 1, maxLength: 12 }), async (specs) => {
        run += 1;
        const now = Date.now();
        const batch = specs.map((spec, i) => {
          const base: Record<string, unknown> = {
            type: 'track',
            event: spec.name.trim() === '' ? 'blank' : spec.name,
            // Ids that are placeholders would be dropped by design; keep them distinct.
            anonymousId: `fz-${spec.anon}`,
            messageId: `fz-${run}-${i}`,
            timestamp: new Date(now - spec.ageMs).toISOString(),
            properties: spec.properties,
          };
          return spec.breakage ? BREAKAGES[spec.breakage](base) : base;
        });
        const valid = specs.flatMap((s, i) => (s.breakage ? [] : [i]));
        const invalid = specs.flatMap((s, i) => (s.breakage ? [[i, s.breakage] as const] : []));
        // Some requests are sent twice, as a client retry would.
        const sends = specs[0]?.duplicate ? 2 : 1;

        for (let attempt = 0; attempt < sends; attempt += 1) {
          const res = await ingest(site, { batch });
          expect(res.status).toBe(valid.length > 0 ? 200 : 400);
          const body = (await res.json()) as {
            accepted: number;
            duplicates: number;
            rejected: Array<{ index: number; code: string }>;
          };
          expect(body.rejected.map((r) => [r.index, r.code])).toEqual(invalid);
          expect(body.accepted + body.duplicates).toBe(valid.length);
          expect(body.accepted).toBe(attempt === 0 ? valid.length : 0);
        }

        const prefix = `fz-${run}-%`;
        await settle({ siteId: 'fuzz' });
        const stored = await env.DB.prepare(
          `SELECT message_id, COUNT(*) AS n FROM events WHERE site_id = 'fuzz' AND message_id LIKE ?
           GROUP BY message_id`,
        )
          .bind(prefix)
          .all<{ message_id: string; n: number }>();
        expect(stored.results.map((r) => r.message_id).sort()).toEqual(
          valid.map((i) => `fz-${run}-${i}`).sort(),
        );
        expect(stored.results.every((r) => r.n === 1)).toBe(true);

        const kept = await env.DB.prepare(
          `SELECT message_id, code FROM rejected_events WHERE site_id = 'fuzz' AND message_id LIKE ?`,
        )
          .bind(prefix)
          .all<{ message_id: string; code: string }>();
        // Each invalid event is kept once, however often the batch was retried.
        const expected = invalid.map(([i, code]) => `fz-${run}-${i}:${code}`);
        expect(kept.results.map((r) => `${r.message_id}:${r.code}`).sort()).toEqual(
          expected.sort(),
        );
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});

describe('fuzzing raw bodies through the Worker', () => {
  let site: TestSite;
  beforeAll(async () => {
    site = await seedSite('fuzz-raw', ['view']);
  });

  const validBody = JSON.stringify({
    batch: [
      {
        type: 'track',
        event: 'view',
        anonymousId: 'raw',
        messageId: 'raw-1',
        properties: { a: '😀' },
      },
    ],
  });
  const bytes = new TextEncoder().encode(validBody);
  const mutated = fc
    .tuple(
      fc.integer({ min: 0, max: bytes.length - 1 }),
      fc.integer({ min: 0, max: 255 }),
      fc.boolean(),
    )
    .map(([at, value, cut]) => {
      const copy = bytes.slice(0, cut ? at : bytes.length);
      if (!cut) copy[at] = value;
      return copy;
    });

  it('never answers a 5xx, and answers every refusal with a stable code', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }),
          mutated,
          fc.json().map((t) => new TextEncoder().encode(t)),
        ),
        fc.constantFrom('application/json', 'text/plain', 'application/octet-stream'),
        async (body, contentType) => {
          const res = await SELF.fetch('https://goalstep.test/v1/batch', {
            method: 'POST',
            headers: {
              Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
              'Content-Type': contentType,
            },
            body,
          });
          expect(res.status).toBeLessThan(500);
          const answer = (await res.json()) as { code?: string; accepted?: number };
          if (res.status === 200) expect(typeof answer.accepted).toBe('number');
          else expect(answer.code).toMatch(/^[a-z_]+$/);
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);
});

describe('fuzzing with injected D1 faults', () => {
  let site: TestSite;
  beforeAll(async () => {
    site = await seedSite('fuzz-faults', ['view']);
  });

  it('answers only 200 or an injected 503; a retrying client stores each event once', async () => {
    let batchNo = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.constantFrom('before', 'after', 'none'), { minLength: 1, maxLength: 4 }),
        async (size, faults) => {
          batchNo += 1;
          const batch = Array.from({ length: size }, (_, i) => ({
            type: 'track',
            event: 'view',
            anonymousId: `ff-${batchNo}`,
            messageId: `ff-${batchNo}-${i}`,
            timestamp: new Date(Date.now() - 1000).toISOString(),
          }));
          // The client retries until it gets a 200, meeting one planned fault per attempt.
          let status = 0;
          for (const fault of [...faults, 'none']) {
            const request = new Request('https://goalstep.test/v1/batch', {
              method: 'POST',
              headers: { Authorization: `Basic ${btoa(`${site.writeKey}:`)}` },
              body: JSON.stringify({ batch }),
            });
            const res = await fetchWithFaults(request, {
              failBatchesBefore: fault === 'before' ? 1 : 0,
              failBatchesAfter: fault === 'after' ? 1 : 0,
            });
            status = res.status;
            // A beacon of valid events writes nothing to D1 itself (the site object copies
            // them), so a D1 fault on its path may leave it answered 200.
            expect(fault === 'none' ? [200] : [200, 503]).toContain(status);
            if (status === 200) break;
          }
          expect(status).toBe(200);
          await settle({ siteId: 'fuzz-faults' });
          const n = await env.DB.prepare(
            "SELECT COUNT(*) AS n FROM events WHERE site_id = 'fuzz-faults' AND message_id LIKE ?",
          )
            .bind(`ff-${batchNo}-%`)
            .first<{ n: number }>();
          expect(n?.n).toBe(size);
        },
      ),
      { numRuns: 30 },
    );
  }, 120_000);
});
