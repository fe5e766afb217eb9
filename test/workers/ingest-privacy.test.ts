/**
 * Keeping and giving back data: re-submitting rejected events after a fix, one person's export
 * and erasure across every store, and the per-site retention purge of the cron.
 */
import { env, SELF } from 'cloudflare:test';
import { purgeExpired } from '../../src/ingest/retention';
import { ADMIN, counts, importBatch, ingest, report, seedSite, settle, track } from './helpers';

const BASE = 'https://goalstep.test';
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

function admin(path: string, method = 'GET', body?: unknown) {
  return SELF.fetch(`${BASE}${path}`, {
    method,
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const count = async (sql: string, ...binds: unknown[]) =>
  (
    await env.DB.prepare(sql)
      .bind(...binds)
      .first<{ n: number }>()
  )?.n ?? 0;

describe('re-submitting rejected events', () => {
  it('stores a rejected event re-sent as is or corrected, and records who did it', async () => {
    const site = await seedSite('resubmit', ['view', 'cart']);
    const res = await ingest(site, {
      batch: [
        track('view', { anonymousId: 'rs' }, 'rs-1', ago(30 * 86_400_000)),
        track('', { anonymousId: 'rs' }, 'rs-2', ago(1000)),
      ],
    });
    expect(await res.json()).toMatchObject({
      accepted: 0,
      rejected: [{ code: 'timestamp_too_old' }, { code: 'missing_event_name' }],
    });
    const listed = (await (await admin('/admin/sites/resubmit/rejected')).json()) as {
      rejected: Array<{ id: number; messageId: string }>;
    };
    const idOf = (m: string) => listed.rejected.find((r) => r.messageId === m)?.id ?? -1;

    // The too-old event goes through as the admin path accepts any time; the nameless one
    // needs its fix.
    const again = await admin('/admin/sites/resubmit/rejected/resubmit', 'POST', {
      items: [
        { id: idOf('rs-1') },
        { id: idOf('rs-2'), event: track('cart', { anonymousId: 'rs' }, 'rs-2', ago(1000)) },
      ],
    });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ accepted: 2, rejected: [] });
    await settle({ siteId: 'resubmit' });
    expect(await count("SELECT COUNT(*) AS n FROM events WHERE site_id = 'resubmit'")).toBe(2);
    expect(
      await count(
        "SELECT COUNT(*) AS n FROM rejected_events WHERE site_id = 'resubmit' AND resubmitted_at IS NOT NULL",
      ),
    ).toBe(2);
    const audit = (await (await admin('/admin/audit?site=resubmit')).json()) as {
      entries: Array<{ actor: string; action: string }>;
    };
    expect(audit.entries[0]).toMatchObject({ actor: 'root', action: 'rejected.resubmit' });
  });

  it('re-sends an event refused on a single-event route with its implied type', async () => {
    const site = await seedSite('resubmit-single', ['view']);
    // `/v1/track` implies the type: the body carries none. Too old for a write key.
    const { type: _type, ...body } = track(
      'view',
      { anonymousId: 'rs1' },
      'rs1-1',
      ago(30 * 86_400_000),
    );
    const res = await ingest(site, body, '/v1/track');
    expect(await res.json()).toMatchObject({ rejected: [{ code: 'timestamp_too_old' }] });
    const listed = (await (await admin('/admin/sites/resubmit-single/rejected')).json()) as {
      rejected: Array<{ id: number }>;
    };
    const again = await admin('/admin/sites/resubmit-single/rejected/resubmit', 'POST', {
      items: [{ id: listed.rejected[0]?.id }],
    });
    expect(await again.json()).toMatchObject({ accepted: 1, rejected: [] });

    // One refused again on re-submission (still no event name) is not marked re-submitted.
    const nameless = { ...track('', { anonymousId: 'rs1' }, 'rs1-2', ago(1000)) };
    await ingest(site, { batch: [nameless] });
    const resubmitted = () =>
      count(
        `SELECT COUNT(*) AS n FROM rejected_events
         WHERE site_id = 'resubmit-single' AND resubmitted_at IS NOT NULL`,
      );
    expect(await resubmitted()).toBe(1);
    const rows = (await (await admin('/admin/sites/resubmit-single/rejected')).json()) as {
      rejected: Array<{ id: number; messageId: string }>;
    };
    const id = rows.rejected.find((r) => r.messageId === 'rs1-2')?.id;
    const refused = await admin('/admin/sites/resubmit-single/rejected/resubmit', 'POST', {
      items: [{ id }],
    });
    expect(await refused.json()).toMatchObject({ rejected: [{ code: 'missing_event_name' }] });
    expect(await resubmitted()).toBe(1);
  });
});

describe('re-submitting filtered events', () => {
  it('stores a bot-flagged event judged human; refuses one kept without payload', async () => {
    const site = await seedSite('resubmit-bot', ['view']);
    await ingest(site, {
      batch: [
        {
          ...track('view', { anonymousId: 'rb' }, 'rb-1', ago(2000)),
          context: {
            userAgent: 'Mozilla/5.0 (compatible; MyCompanyMonitor/1.0; +http://example.test)',
          },
        },
      ],
    });
    await ingest(
      site,
      { batch: [track('view', { anonymousId: 'rb' }, 'rb-2', ago(1000))] },
      '/v1/batch',
      {
        'Sec-GPC': '1',
      },
    );
    await admin('/admin/sites/resubmit-bot/ingest-settings', 'PATCH', {
      honorPrivacySignals: true,
    });
    await ingest(
      site,
      { batch: [track('view', { anonymousId: 'rb' }, 'rb-3', ago(500))] },
      '/v1/batch',
      {
        'Sec-GPC': '1',
      },
    );
    const listed = (await (await admin('/admin/sites/resubmit-bot/rejected')).json()) as {
      rejected: Array<{ id: number; messageId: string; code: string }>;
    };
    const bot = listed.rejected.find((r) => r.messageId === 'rb-1');
    const optOut = listed.rejected.find((r) => r.messageId === 'rb-3');
    expect([bot?.code, optOut?.code]).toEqual(['bot', 'privacy_opt_out']);

    const accepted = await admin('/admin/sites/resubmit-bot/rejected/resubmit', 'POST', {
      items: [{ id: bot?.id }],
    });
    expect(await accepted.json()).toMatchObject({ accepted: 1, filtered: [] });
    const refused = await admin('/admin/sites/resubmit-bot/rejected/resubmit', 'POST', {
      items: [{ id: optOut?.id }],
    });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ code: 'raw_not_resubmittable' });
    // rb-2 was sent before the site honoured the signal, so it was stored.
    await settle({ siteId: 'resubmit-bot' });
    expect(await count("SELECT COUNT(*) AS n FROM events WHERE site_id = 'resubmit-bot'")).toBe(2);
  });
});

describe("one person's data", () => {
  it('exports and erases a person by any of their ids from every store', async () => {
    const site = await seedSite('erase', ['view', 'cart']);
    await importBatch(site, [
      track('view', { anonymousId: 'phone' }, 'er-1', ago(50_000)),
      track('view', { anonymousId: 'laptop', userId: 'ann' }, 'er-2', ago(40_000)),
      track('cart', { anonymousId: 'phone', userId: 'ann' }, 'er-3', ago(30_000)),
      track('view', { anonymousId: 'bob-phone' }, 'er-4', ago(20_000)),
    ]);
    // A rejected event of Ann's keeps her id in its payload.
    await ingest(site, { batch: [track('', { userId: 'ann' }, 'er-5', ago(10_000))] });
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);

    // Found from the phone's anonymous id: the laptop and the user id come with it.
    const exported = (await (await admin('/admin/sites/erase/people/phone')).json()) as {
      anonymousIds: string[];
      userIds: string[];
      events: Array<{ message_id: string }>;
      rejected: unknown[];
      attempts: unknown[];
      stateEvents: unknown[];
    };
    expect(exported.anonymousIds.sort()).toEqual(['laptop', 'phone']);
    expect(exported.userIds).toEqual(['ann']);
    expect(exported.events.map((e) => e.message_id).sort()).toEqual(['er-1', 'er-2', 'er-3']);
    expect(exported.rejected).toHaveLength(1);
    expect(exported.attempts.length).toBeGreaterThan(0);
    expect(exported.stateEvents).toHaveLength(3);

    const erased = await admin('/admin/sites/erase/people/ann', 'DELETE');
    expect(await erased.json()).toMatchObject({
      deleted: { events: 3, rejected: 1, stateEvents: 3 },
    });
    // Nothing of Ann is left anywhere: her ids no longer name anyone.
    const after = await admin('/admin/sites/erase/people/phone');
    expect(after.status).toBe(404);
    expect(await count("SELECT COUNT(*) AS n FROM rejected_events WHERE site_id = 'erase'")).toBe(
      0,
    );
    expect(
      await count(
        "SELECT COUNT(*) AS n FROM attempts WHERE site_id = 'erase' AND person_id = 'u:ann'",
      ),
    ).toBe(0);
    // Bob is untouched; the report now counts him alone.
    expect(await count("SELECT COUNT(*) AS n FROM events WHERE site_id = 'erase'")).toBe(1);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 0]);
    const audit = (await (await admin('/admin/audit?site=erase')).json()) as {
      entries: Array<{ action: string; detail: unknown }>;
    };
    expect(audit.entries.map((e) => e.action).filter((a) => a.startsWith('person.'))).toEqual([
      'person.erase',
      'person.export',
    ]);
    expect(JSON.stringify(audit.entries)).not.toContain('ann');
  });

  it('erases one customer of a shared device and keeps the other (review finding)', async () => {
    const site = await seedSite('shared-erase', ['view', 'buy']);
    await importBatch(site, [
      // One computer: Ann logs in and views, then Bob logs in on it and buys.
      {
        type: 'identify',
        anonymousId: 'family-pc',
        userId: 'ann',
        messageId: 'se-1',
        timestamp: ago(50_000),
      },
      track('view', { anonymousId: 'family-pc' }, 'se-2', ago(45_000)),
      {
        type: 'identify',
        anonymousId: 'family-pc',
        userId: 'bob',
        messageId: 'se-3',
        timestamp: ago(40_000),
      },
      track('view', { anonymousId: 'family-pc' }, 'se-4', ago(35_000)),
      track('buy', { userId: 'bob' }, 'se-5', ago(30_000)),
    ]);
    await settle(site);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([2, 1]);

    const erased = await admin('/admin/sites/shared-erase/people/ann', 'DELETE');
    expect(erased.status).toBe(200);
    await settle(site);

    // Only Ann's two events went; Bob's identify, view on the same computer and purchase stay.
    const left = await env.DB.prepare(
      "SELECT message_id FROM events WHERE site_id = 'shared-erase' ORDER BY message_id",
    ).all<{ message_id: string }>();
    expect(left.results.map((r) => r.message_id)).toEqual(['se-3', 'se-4', 'se-5']);
    expect(counts(await report(site, today(), tomorrow()))).toEqual([1, 1]);
    expect((await admin('/admin/sites/shared-erase/people/bob')).status).toBe(200);
  });

  it("follows a person with 150 anonymous ids within D1's parameter limit (C32)", async () => {
    const site = await seedSite('many-ids', ['step_1']);
    const batch = Array.from({ length: 150 }, (_, i) =>
      track(
        'step_1',
        { anonymousId: `anon-c32-${i}`, userId: 'user-c32' },
        `mi-${i}`,
        ago(100_000 - i),
      ),
    );
    await importBatch(site, batch.slice(0, 100));
    await importBatch(site, batch.slice(100));
    const exported = (await (await admin('/admin/sites/many-ids/people/anon-c32-7')).json()) as {
      anonymousIds: string[];
      events: unknown[];
    };
    expect(exported.anonymousIds).toHaveLength(150);
    expect(exported.events).toHaveLength(150);
  });
});

describe('retention', () => {
  it('purges raw events past the site retention and keeps the report numbers', async () => {
    const site = await seedSite('retain', ['view', 'cart']);
    const old = Date.UTC(2025, 0, 10, 12);
    await importBatch(site, [
      track('view', { anonymousId: 'ret' }, 'ret-1', new Date(old).toISOString()),
      track('cart', { anonymousId: 'ret' }, 'ret-2', new Date(old + 60_000).toISOString()),
      track('view', { anonymousId: 'new' }, 'ret-3', ago(1000)),
    ]);
    await settle(site);
    const before = counts(await report(site, '2025-01-10', '2025-01-11'));
    expect(before).toEqual([1, 1]);

    await admin('/admin/sites/retain/ingest-settings', 'PATCH', { retentionDays: 30 });
    // Sites without a retention setting keep everything.
    const otherSites = await count("SELECT COUNT(*) AS n FROM events WHERE site_id != 'retain'");
    expect(await purgeExpired(env.DB, Date.now())).toBeGreaterThanOrEqual(2);

    const left = await env.DB.prepare(
      "SELECT message_id FROM events WHERE site_id = 'retain'",
    ).all();
    expect(left.results).toEqual([{ message_id: 'ret-3' }]);
    expect(await count("SELECT COUNT(*) AS n FROM events WHERE site_id != 'retain'")).toBe(
      otherSites,
    );
    expect(counts(await report(site, '2025-01-10', '2025-01-11'))).toEqual(before);
  });

  it('refuses events past the retention on any path: purged events never count twice', async () => {
    const site = await seedSite('retain-twice', ['a', 'b']);
    await admin('/admin/sites/retain-twice/ingest-settings', 'PATCH', {
      retentionDays: 1,
      backfillDays: 3650,
    });
    const at = (ms: number) => new Date(Date.now() - 3 * 86_400_000 + ms).toISOString();
    const old = (device: string) => [
      track('a', { anonymousId: device }, 'twice-1', at(0)),
      track('b', { anonymousId: device }, 'twice-2', at(60_000)),
    ];
    // Older than the retention: refused with the reason, on the import path and a write key.
    for (const res of [
      await importBatch(site, old('dev-a')),
      await ingest(site, { batch: old('dev-a') }),
    ]) {
      expect(res.status).toBe(400);
      const body = (await res.json()) as { accepted: number; rejected: Array<{ code: string }> };
      expect(body.accepted).toBe(0);
      expect(body.rejected.map((r) => r.code)).toEqual([
        'older_than_retention',
        'older_than_retention',
      ]);
    }
    // The purge deletes from D1 only events older than the retention at its own time, and ingest
    // at a later time refuses all of those. Inside the retention, the site object (which keys
    // events by device and message id, and is never purged) still holds the event, and a re-send
    // is a duplicate; the same message id from another device is another event (docs/API.md).
    const recent = (device: string) => [
      track('a', { anonymousId: device }, 'twice-3', ago(60_000)),
    ];
    expect((await importBatch(site, recent('dev-c'))).status).toBe(200);
    await purgeExpired(env.DB, Date.now());
    const again = await importBatch(site, recent('dev-c'));
    expect(await again.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    await settle(site);
    const day = [today(), tomorrow()] as const;
    expect(counts(await report(site, ...day))).toEqual([1, 0]);
    const elsewhere = await importBatch(site, recent('dev-d'));
    expect(await elsewhere.json()).toMatchObject({ accepted: 1, duplicates: 0 });
    await settle(site);
    expect(counts(await report(site, ...day))).toEqual([2, 0]);
  });

  it('keeps refusing what a purge deleted when the retention is raised afterwards', async () => {
    const site = await seedSite('retain-raise', ['a', 'b']);
    const settings = (retentionDays: number) =>
      admin('/admin/sites/retain-raise/ingest-settings', 'PATCH', { retentionDays });
    const at = (ms: number) => new Date(Date.now() - 3 * 86_400_000 + ms).toISOString();
    const visit = (device: string) => [
      track('a', { anonymousId: device }, 'raise-1', at(0)),
      track('b', { anonymousId: device }, 'raise-2', at(60_000)),
    ];
    const days = [at(0).slice(0, 10), new Date(Date.now()).toISOString().slice(0, 10)] as const;
    await settings(4);
    expect(await (await importBatch(site, visit('dev-a'))).json()).toMatchObject({ accepted: 2 });
    await settle(site);
    expect(counts(await report(site, ...days))).toEqual([1, 1]);
    // Retention lowered, purged, raised again: the events are inside the new retention, but D1
    // no longer holds their ids, so a re-send (here from another device) must not count again.
    await settings(2);
    await purgeExpired(env.DB, Date.now());
    expect(await count("SELECT COUNT(*) AS n FROM events WHERE site_id = 'retain-raise'")).toBe(0);
    await settings(4);
    for (const res of [
      await importBatch(site, visit('dev-b')),
      await ingest(site, { batch: visit('dev-b') }),
    ]) {
      const body = (await res.json()) as { accepted: number; rejected: Array<{ code: string }> };
      expect(body.accepted).toBe(0);
      expect(body.rejected.map((r) => r.code)).toEqual([
        'older_than_retention',
        'older_than_retention',
      ]);
    }
    await settle(site);
    expect(counts(await report(site, ...days))).toEqual([1, 1]);
  });
});
