/**
 * Ids of refused and filtered events (migration 0015, src/ingest/refused-store.ts): a number
 * from the received time in milliseconds × 1000 plus a tiebreak, unique within the site and
 * never reused, and rows from before 0015 carried over with their AUTOINCREMENT ids.
 */
import { env, SELF } from 'cloudflare:test';
import { storeBatch } from '../../src/ingest/event-store';
import { purgeExpired } from '../../src/ingest/retention';
import { ADMIN, seedSite, track } from './helpers';

const BASE = 'https://goalstep.test';
const T = Date.UTC(2026, 0, 5, 12);

/** Files `n` refused events without a message id for the site at `receivedAt`. */
async function fileRefused(siteId: string, receivedAt: number, n = 1) {
  const rejected = Array.from({ length: n }, (_, index) => ({
    index,
    code: 'missing_identity',
    path: '',
    message: 'no id',
    raw: { index },
    messageId: null,
  }));
  await storeBatch(env.DB, {
    siteId,
    batchId: 'ids',
    receivedAt,
    events: [],
    rejected,
    filtered: [],
  });
}

async function rows(siteId: string) {
  const { results } = await env.DB.prepare(
    'SELECT id, received_at AS receivedAt FROM rejected_events WHERE site_id = ? ORDER BY id',
  )
    .bind(siteId)
    .all<{ id: number; receivedAt: number }>();
  return results;
}

function admin(path: string, method = 'GET', body?: unknown) {
  return SELF.fetch(`${BASE}${path}`, {
    method,
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

describe('refused event ids', () => {
  it('numbers 1000 ids a millisecond, then the next one; a late clock files last', async () => {
    // 1001 in one millisecond T: T × 1000 … T × 1000 + 999, then the next id, whose received
    // time is T + 1.
    await fileRefused('ids-burst', T, 1001);
    const burst = await rows('ids-burst');
    expect(burst).toHaveLength(1001);
    expect(burst[0]).toEqual({ id: T * 1000, receivedAt: T });
    expect(burst[999]).toEqual({ id: T * 1000 + 999, receivedAt: T });
    expect(burst[1000]).toEqual({ id: (T + 1) * 1000, receivedAt: T + 1 });
    // A Worker whose clock reads 5 ms earlier files after the newest, at the newest's time.
    await fileRefused('ids-burst', T - 5);
    expect((await rows('ids-burst'))[1001]).toEqual({ id: (T + 1) * 1000 + 1, receivedAt: T + 1 });
    // Another site numbers its own rows from the same time.
    await fileRefused('ids-other', T);
    expect(await rows('ids-other')).toEqual([{ id: T * 1000, receivedAt: T }]);
  });

  it('never hands out the id of a purged newest row again, in the same millisecond', async () => {
    const old = Date.UTC(2025, 0, 5);
    const floor = (siteId: string) =>
      env.DB.prepare('SELECT id FROM rejected_floor WHERE site_id = ?').bind(siteId).first('id');
    for (const siteId of ['ids-purge-old', 'ids-purge-all']) {
      await seedSite(siteId, ['view']);
      await admin(`/admin/sites/${siteId}/ingest-settings`, 'PATCH', { retentionDays: 30 });
      await fileRefused(siteId, old, 2);
    }
    const recent = Date.now() - 60_000;
    await fileRefused('ids-purge-old', recent);

    await purgeExpired(env.DB, Date.now());
    // Only older rows purged: the newest stays above them, no floor.
    expect(await rows('ids-purge-old')).toEqual([{ id: recent * 1000, receivedAt: recent }]);
    expect(await floor('ids-purge-old')).toBeNull();
    // Every row purged: the floor keeps the newest id, old × 1000 + 1, and a row filed at the
    // purged rows' own time gets the next one.
    expect(await rows('ids-purge-all')).toEqual([]);
    expect(await floor('ids-purge-all')).toBe(old * 1000 + 1);
    await fileRefused('ids-purge-all', old);
    expect(await rows('ids-purge-all')).toEqual([{ id: old * 1000 + 2, receivedAt: old }]);
  });

  it("never reuses an erased person's newest refused id", async () => {
    const site = await seedSite('ids-erase', ['view']);
    const at = new Date(Date.now() - 60_000).toISOString();
    const res = await SELF.fetch(`${BASE}/v1/batch`, {
      method: 'POST',
      headers: {
        Authorization: `Basic ${btoa(`${site.writeKey}:`)}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({
        batch: [
          track('view', { anonymousId: 'dev-e', userId: 'erin' }, 'ie-1', at),
          track('', { anonymousId: 'dev-e', userId: 'erin' }, 'ie-2', at),
        ],
      }),
    });
    expect(await res.json()).toMatchObject({ accepted: 1, rejected: [{ index: 1 }] });
    const [filed] = await rows('ids-erase');
    const erased = await admin('/admin/sites/ids-erase/people/erin', 'DELETE');
    expect(await erased.json()).toMatchObject({ deleted: { rejected: 1 } });

    // Filed at the erased row's own time: without the floor it would get the erased id back.
    await fileRefused('ids-erase', filed?.receivedAt ?? 0);
    const [next] = await rows('ids-erase');
    expect(next?.id).toBeGreaterThan(filed?.id ?? Infinity);
  });
});

describe('refused event list pages', () => {
  it('pages newest first with next / before until every row was listed once', async () => {
    await seedSite('pages', ['view']);
    await fileRefused('pages', T, 3); // three in one millisecond: ids T×1000 + 0, 1, 2
    await fileRefused('pages', T + 5, 2); // two later
    const list = async (query: string) => {
      const res = await SELF.fetch(`${BASE}/admin/sites/pages/rejected?${query}`, {
        headers: ADMIN,
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const ids = (body: Record<string, unknown>) =>
      (body.rejected as Array<{ id: number }>).map((r) => r.id - T * 1000);
    const first = await list('limit=2');
    // Newest first: the later two (ids T+5 ms: 5000, 5001), then the first three backwards.
    expect([ids(first.body), first.body.next]).toEqual([[5001, 5000], T * 1000 + 5000]);
    const second = await list(`limit=2&before=${String(first.body.next)}`);
    expect([ids(second.body), second.body.next]).toEqual([[2, 1], T * 1000 + 1]);
    const third = await list(`limit=2&before=${String(second.body.next)}`);
    // A short page is the last: no next.
    expect([ids(third.body), third.body.next]).toEqual([[0], null]);
    expect((await list('before=12x')).body).toMatchObject({ code: 'invalid_before' });
    const unknown = await list(`before=${T * 1000 + 9}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 'rejected_not_found' });
  });
});

describe('migration 0015', () => {
  it('carries old rows over with their ids, listed and re-submittable by them', async () => {
    await seedSite('legacy', ['view']);
    const migration = env.TEST_MIGRATIONS.find((m) => m.name === '0015_lean_rejected.sql');
    expect(migration).toBeDefined();
    // The table as migrations 0000 and 0003 left it: this site's AUTOINCREMENT ids 7 and 9, 8
    // another site's, 10 without a site (never written, but the column allowed it), and the
    // sequence at 12 (row 12 deleted).
    const before = Date.now() - 3_600_000;
    const event = (messageId: string) =>
      JSON.stringify(
        track('view', { anonymousId: 'old' }, messageId, new Date(before).toISOString()),
      );
    await env.DB.batch(
      [
        'DROP TABLE rejected_events',
        'DROP TABLE rejected_floor',
        `CREATE TABLE rejected_events (id integer PRIMARY KEY AUTOINCREMENT NOT NULL,
          site_id text, received_at integer NOT NULL, code text NOT NULL, path text,
          message text NOT NULL, raw text, disposition text DEFAULT 'rejected' NOT NULL,
          rule text, message_id text, resubmitted_at integer)`,
        'CREATE INDEX rejected_site_time ON rejected_events (site_id, received_at)',
        'CREATE INDEX rejected_site_message ON rejected_events (site_id, message_id)',
      ].map((sql) => env.DB.prepare(sql)),
    );
    const insert = env.DB.prepare(
      `INSERT INTO rejected_events (id, site_id, received_at, code, path, message, raw,
         disposition, rule, message_id) VALUES (?, ?, ?, 'timestamp_too_old', '', 'old', ?,
         'rejected', NULL, ?)`,
    );
    await env.DB.batch([
      insert.bind(7, 'legacy', before, event('leg-7'), 'leg-7'),
      insert.bind(8, 'other', before, event('leg-8'), 'leg-8'),
      insert.bind(9, 'legacy', before + 1, event('leg-9'), 'leg-9'),
      insert.bind(10, null, before, null, null),
      insert.bind(12, 'legacy', before + 2, event('leg-12'), 'leg-12'),
      env.DB.prepare('DELETE FROM rejected_events WHERE id = 12'),
    ]);

    await env.DB.batch((migration?.queries ?? []).map((sql) => env.DB.prepare(sql)));

    const table = await env.DB.prepare(
      "SELECT sql FROM sqlite_master WHERE name = 'rejected_events'",
    ).first<{ sql: string }>();
    expect(table?.sql).toMatch(/WITHOUT ROWID$/);
    expect(await rows('legacy')).toEqual([
      { id: 7, receivedAt: before },
      { id: 9, receivedAt: before + 1 },
    ]);
    expect(await rows('other')).toEqual([{ id: 8, receivedAt: before }]);
    expect(await rows('')).toEqual([{ id: 10, receivedAt: before }]);

    // A new row is filed above them (its id from the time, not the old counter) and listed first.
    const now = Date.now();
    await fileRefused('legacy', now);
    const listed = (await (await admin('/admin/sites/legacy/rejected')).json()) as {
      rejected: Array<{ id: number; messageId: string | null }>;
    };
    expect(listed.rejected.map((r) => r.id)).toEqual([now * 1000, 9, 7]);

    // Old ids re-submit, alone and with a new one (whose stored payload is not an event).
    const again = await admin('/admin/sites/legacy/rejected/resubmit', 'POST', {
      items: [{ id: 7 }],
    });
    expect(await again.json()).toMatchObject({ accepted: 1, rejected: [] });
    const mixed = await admin('/admin/sites/legacy/rejected/resubmit', 'POST', {
      items: [
        { id: 9 },
        {
          id: now * 1000,
          event: track('view', { anonymousId: 'new' }, 'n-1', new Date(now).toISOString()),
        },
      ],
    });
    expect(await mixed.json()).toMatchObject({ accepted: 2, rejected: [] });
    const { results: marked } = await env.DB.prepare(
      `SELECT id FROM rejected_events WHERE site_id = 'legacy' AND resubmitted_at IS NOT NULL
       ORDER BY id`,
    ).all<{ id: number }>();
    expect(marked.map((r) => r.id)).toEqual([7, 9, now * 1000]);
    // The other site's row 8 is not this site's to re-submit.
    const foreign = await admin('/admin/sites/legacy/rejected/resubmit', 'POST', {
      items: [{ id: 8 }],
    });
    expect(foreign.status).toBe(404);
  });
});
