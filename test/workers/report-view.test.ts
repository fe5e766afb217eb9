/**
 * The report's view: filters in both paths, every view parameter as a form control, the CSV's
 * sections, the glossary written out, the range shown as dates, and one cache entry per view
 * however it is spelled. Expected numbers are worked out by hand from docs/METRICS.md.
 */
import { SELF } from 'cloudflare:test';
import { parse } from 'csv-parse/browser/esm/sync';
import { formatRange, resolveRange } from '../../src/report/range';
import {
  ADMIN,
  FRESH,
  importBatch,
  reportGet,
  seedSite,
  settle,
  track,
  waitReady,
  type TestSite,
} from './helpers';

const BASE = 'https://goalstep.test';
const T = (minutes: number) => new Date(Date.UTC(2025, 2, 3, 10, minutes)).toISOString();
const DAY = 'from=2025-03-03&to=2025-03-04';

interface Summary {
  entered: number;
  completed: number;
  steps: Array<{ count: number }>;
}
interface ViewJson extends Summary {
  source: string;
  filters: Array<{ key: string; value: string }>;
  rangeLabel: string;
  overTime: Array<{ bucket: string; entered: number; completed: number }>;
  breakdown: { by: string; groups: Array<{ value: string } & Summary> } | null;
  glossary: Array<{ term: string; meaning: string }>;
}

const json = async (site: TestSite, query: string) => {
  const res = await reportGet(site, `${query}&format=json`);
  expect(res.status).toBe(200);
  return (await res.json()) as ViewJson;
};
const counts = (r: Summary) => r.steps.map((s) => s.count);

/**
 * Four people on 3 March: p1 (news) a→b, p2 (news) a, p3 (ads) a→b, p4 (no campaign) a; p5
 * (`=cmd` as campaign source, a formula) a on 4 March.
 */
async function campaignSite(siteId: string): Promise<TestSite> {
  const site = await seedSite(siteId, ['a', 'b']);
  const from = (source: string) => ({ campaign: { source } });
  await importBatch(site, [
    { ...track('a', { anonymousId: 'p1' }, 'm1', T(0)), context: from('news') },
    track('b', { anonymousId: 'p1' }, 'm2', T(5)),
    { ...track('a', { anonymousId: 'p2' }, 'm3', T(1)), context: from('news') },
    { ...track('a', { anonymousId: 'p3' }, 'm4', T(2)), context: from('ads') },
    track('b', { anonymousId: 'p3' }, 'm5', T(9)),
    track('a', { anonymousId: 'p4' }, 'm6', T(3)),
    { ...track('a', { anonymousId: 'p5' }, 'm7', T(24 * 60)), context: from('=cmd') },
  ]);
  await settle(site);
  return site;
}

describe('segment filters', () => {
  it('restricts people by segment at entry, on progress rows and on stored events', async () => {
    const site = await campaignSite('filters');
    const news = await json(site, `${DAY}&filter=utm_source:news`);
    expect([news.source, news.entered, counts(news)]).toEqual(['progress', 2, [2, 1]]);
    expect(news.filters).toEqual([{ key: 'utm_source', value: 'news' }]);

    // Values of one key are alternatives; the key alone keeps people without a value.
    const either = await json(site, `${DAY}&filter=utm_source:news&filter=utm_source:ads`);
    expect(counts(either)).toEqual([3, 2]);
    const none = await json(site, `${DAY}&filter=utm_source`);
    expect(counts(none)).toEqual([1, 0]);
    expect(none.filters).toEqual([{ key: 'utm_source', value: null }]);

    // The override path (stored events in the site object) filters the same people.
    const strict = await json(site, `${DAY}&mode=strict&filter=utm_source:news`);
    expect([strict.source, counts(strict)]).toEqual(['events', [2, 1]]);
  });

  it('refuses a filter without a known key with a stable code', async () => {
    const site = await seedSite('filters-bad', ['a', 'b']);
    for (const filter of ['shoe_size:42', 'shoe_size', 'utm_source:', 'property:a b:c']) {
      const res = await reportGet(site, `${DAY}&format=json&filter=${encodeURIComponent(filter)}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid_filter' });
    }
  });

  it("names a renamed zone as it is written today, whatever the runtime's database says", () => {
    // IANA renames (Calcutta → Kolkata 2008, Kiev → Kyiv 2022, Godthab → Nuuk 2020): every
    // spelling of one zone resolves to the current name and the same instants.
    const at = Date.UTC(2025, 2, 3);
    for (const [names, current, offsetHours] of [
      [['Asia/Kolkata', 'asia/calcutta', 'Asia/Calcutta'], 'Asia/Kolkata', 5.5],
      [['Europe/Kyiv', 'Europe/Kiev'], 'Europe/Kyiv', 2],
      [['America/Nuuk', 'America/Godthab'], 'America/Nuuk', -2],
    ] as const) {
      for (const tz of names) {
        const range = resolveRange({ from: '2025-03-01', to: '2025-03-02', tz }, at);
        expect(range.tz).toBe(current);
        expect(range.from).toBe(Date.UTC(2025, 2, 1) - offsetHours * 3_600_000);
      }
    }
  });

  it('quotes whole characters of a bad zone, date or time, at most 100 (review)', () => {
    const messageOf = (query: { from?: string; to?: string; tz?: string }) => {
      try {
        resolveRange(query, Date.UTC(2025, 2, 3));
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    };
    const zone = messageOf({ tz: `${'x'.repeat(99)}${'😀'.repeat(50)}` });
    // 99 x and no half of the emoji after them.
    expect(zone).toBe(`unknown time zone ${'x'.repeat(99)}…`);
    for (const query of [{ from: 'x'.repeat(20_000) }, { to: `2025-${'9'.repeat(20_000)}` }]) {
      const message = messageOf(query);
      expect(message).toMatch(/^(from|to) /);
      expect(message.length).toBeLessThan(200);
    }
  });

  it('refuses an unknown zone with a message that does not grow with it', async () => {
    const site = await seedSite('zone-bad', ['a', 'b']);
    const zone = `Mars/${'x'.repeat(20_000)}`;
    const res = await reportGet(site, `${DAY}&format=json&tz=${zone}`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe('invalid_tz');
    expect(body.message).toBe(`unknown time zone Mars/${'x'.repeat(95)}…`);
  });
});

describe('view form', () => {
  it('offers every view parameter as a labelled GET control holding the view', async () => {
    const site = await campaignSite('form');
    const query =
      `${DAY}&tz=Europe/Berlin&mode=any&window=2d&breakdown=utm_source&top=3&interval=week` +
      '&version=1&filter=utm_source:news';
    const html = await (await reportGet(site, query)).text();
    const form = html.slice(html.indexOf('<form'), html.indexOf('</form>'));

    const value = (name: string) =>
      new RegExp(`<input[^>]*name="${name}"[^>]*value="([^"]*)"`).exec(form)?.[1];
    const selected = (name: string) => {
      const select = new RegExp(`<select name="${name}">(.*?)</select>`, 's').exec(form)?.[1];
      return /<option value="([^"]*)" selected=""/.exec(select ?? '')?.[1];
    };
    expect(value('from')).toBe('2025-03-03');
    expect(value('to')).toBe('2025-03-04');
    expect(value('tz')).toBe('Europe/Berlin');
    expect(value('window')).toBe('2d');
    expect(value('top')).toBe('3');
    expect(value('filter')).toBe('utm_source:news');
    expect(selected('mode')).toBe('any');
    expect(selected('breakdown')).toBe('utm_source');
    expect(selected('interval')).toBe('week');
    // Version 1 is the newest complete one, so the form asks for "the newest" (an empty value).
    expect(selected('version')).toBe('');
    for (const label of ['Window', 'Top values', 'Trend by', 'Goal version', 'Add a filter']) {
      expect(form).toContain(`<label>${label}`);
    }
  });

  it('reads the empty values of untouched form controls as the defaults', async () => {
    const site = await campaignSite('form-empty');
    const query = `${DAY}&mode=&window=&breakdown=&top=&interval=&version=&filter=&format=json`;
    const res = await reportGet(site, query);
    expect(res.status).toBe(200);
    const body = (await res.json()) as ViewJson;
    expect([body.source, counts(body)]).toEqual(['progress', [4, 2]]);
  });
});

describe('CSV', () => {
  it('carries steps, summary, breakdown groups and trend, formulas neutralised', async () => {
    const site = await campaignSite('csv');
    const query = 'from=2025-03-03&to=2025-03-05&breakdown=utm_source';
    const res = await reportGet(site, `${query}&format=csv`);
    const rows = parse(await res.text(), { columns: true }) as Array<Record<string, string>>;
    // Everyone's rows have no group kind; a group's rows name their kind.
    const pick = (section: string, group = '', kind = group === '' ? '' : 'value') =>
      rows.filter((r) => r.section === section && r.group === group && r.group_kind === kind);

    // Everyone: five entered, p1 and p3 completed; 2 of 5 is 0.4.
    expect(pick('steps').map((r) => r.count)).toEqual(['5', '2']);
    expect(pick('summary').map((r) => [r.entered, r.completed, r.completion_rate])).toEqual([
      ['5', '2', '0.4'],
    ]);
    // Groups by entrants, ties by value, no value last: news 2 (1 completed), then '=cmd' and
    // ads with 1, then p4 without a campaign, whose group has no value and kind `none`.
    const groups = rows.filter((r) => r.group_kind !== '').map((r) => [r.group_kind, r.group]);
    expect([...new Set(groups.map((g) => JSON.stringify(g)))].map((g) => JSON.parse(g))).toEqual([
      ['value', 'news'],
      ['value', "'=cmd"],
      ['value', 'ads'],
      ['none', ''],
    ]);
    expect(pick('steps', 'news').map((r) => [r.breakdown, r.count])).toEqual([
      ['utm_source', '2'],
      ['utm_source', '1'],
    ]);
    expect(pick('summary', 'ads').map((r) => [r.entered, r.completed])).toEqual([['1', '1']]);
    expect(pick('summary', '', 'none').map((r) => [r.entered, r.completed])).toEqual([['1', '0']]);
    expect(pick('completion_within', 'news').length).toBeGreaterThan(0);
    // The trend: four entered on 3 March (two completed), one on 4 March.
    expect(pick('over_time').map((r) => [r.bucket, r.entered, r.completed])).toEqual([
      ['2025-03-03', '4', '2'],
      ['2025-03-04', '1', '0'],
    ]);
  });
});

describe('glossary', () => {
  it('writes out every matcher, rule, window and the version note in words', async () => {
    const site = await seedSite('glossary', ['a', 'b']);
    const put = await SELF.fetch(`${BASE}/admin/sites/glossary/goals/goal`, {
      method: 'PUT',
      headers: { ...ADMIN, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        name: 'Activation',
        window: '14d',
        mode: 'ordered',
        steps: [
          { name: 'Landed', type: 'page', path: '/pricing*' },
          {
            name: 'Connected',
            anyOf: [
              { event: 'connected', where: [{ property: 'kind', op: 'in', value: ['x', 'y'] }] },
              { event: 'imported', where: [{ property: 'rows', op: 'gt', value: 10 }] },
              { url: 'https://shop.test/connect*' },
            ],
          },
          { name: 'Upgraded', trait: { property: 'plan', op: 'eq', value: 'pro' }, optional: true },
          {
            name: 'Paid',
            event: 'paid',
            window: '2h',
            where: [{ property: 'currency', op: 'set' }],
          },
        ],
        exclusions: [{ event: 'refunded', from: 2, to: 4 }],
        holdConstant: ['account'],
        value: { property: 'revenue', dedupeBy: 'order_id' },
        note: 'activation as agreed with sales',
      }),
    });
    expect(put.ok).toBe(true);
    await waitReady('glossary', 'goal', 2);

    const r = await json(site, `${DAY}&mode=strict`);
    const meaning = (term: string) => r.glossary.find((e) => e.term === term)?.meaning;
    expect(meaning('Step 1: Landed')).toBe(
      'a page or screen call whose path matches "/pricing*". This is where a person enters.',
    );
    expect(meaning('Step 2: Connected')).toBe(
      'any of: an event named "connected" with property "kind" one of "x", "y"; or an event ' +
        'named "imported" with property "rows" greater than 10; or a page or screen call whose ' +
        'URL matches "https://shop.test/connect*".',
    );
    expect(meaning('Step 3: Upgraded')).toContain(
      'the person\'s trait "plan" equal to "pro", reached when the trait first takes that value ' +
        '(from an identify call), and again each time it takes the value after having left it',
    );
    expect(meaning('Step 3: Upgraded')).toContain('Optional: a person may skip it');
    expect(meaning('Step 4: Paid')).toBe(
      'an event named "paid" with property "currency" set (any value). Within 2h of the ' +
        'previous required step (inclusive).',
    );
    expect(meaning('Exclusion')).toBe(
      'An event named "refunded" between step 2 and step 4 removes that attempt.',
    );
    expect(meaning('Held constant')).toContain('property "account" with the same value');
    expect(meaning('Value')).toContain('"revenue"');
    expect(meaning('Value')).toContain('counted once by "order_id"');
    expect(meaning('Window')).toBe('Every step within 14d of step 1, the boundary included.');
    expect(meaning('Counting rule')).toContain('strict order');
    expect(meaning('Counting rule')).toContain("(this view overrides the goal's order, ordered)");
    expect(meaning('Goal version')).toBe(
      'Version 2, saved by root: activation as agreed with sales.',
    );

    // In any order, per-step windows do not apply and any required step can start (METRICS.md).
    const any = await json(site, `${DAY}&mode=any`);
    const anyMeaning = (term: string) => any.glossary.find((e) => e.term === term)?.meaning;
    expect(anyMeaning('Step 4: Paid')).toBe(
      'an event named "paid" with property "currency" set (any value). Its own window (2h ' +
        'from the previous step) does not apply in any order.',
    );
    expect(anyMeaning('Step 1: Landed')).toContain(
      'In any order a person enters at the first event matching any required step.',
    );
    expect(anyMeaning('Window')).toBe(
      "Every step within 14d of entry, the boundary included. In any order the steps' own " +
        'windows do not apply.',
    );

    const html = await (await reportGet(site, `${DAY}&mode=strict`)).text();
    expect(html).toContain('<dt>Exclusion</dt><dd>An event named &quot;refunded&quot;');
  });
});

describe('range in the header', () => {
  it('shows the range as dates in its zone, the exclusive end left out', () => {
    const at = (from: string, to: string, tz: string) =>
      formatRange(resolveRange({ from, to, tz }, 0));
    expect(at('2025-02-23', '2025-03-02', 'Europe/Berlin')).toBe(
      '23 Feb – 1 Mar 2025 (Europe/Berlin)',
    );
    expect(at('2025-03-03', '2025-03-04', 'UTC')).toBe('3 Mar 2025 (UTC)');
    expect(at('2024-12-30', '2025-01-02', 'America/New_York')).toBe(
      '30 Dec 2024 – 1 Jan 2025 (America/New_York)',
    );
    // The spring-forward day in Berlin is 23 hours long and still one date.
    expect(at('2025-03-30', '2025-03-31', 'Europe/Berlin')).toBe('30 Mar 2025 (Europe/Berlin)');
    expect(at('2025-03-03T10:30', '2025-03-04T09:00', 'UTC')).toBe(
      '3 Mar 2025 10:30 – 4 Mar 2025 09:00 (UTC)',
    );
  });

  it('puts the dates, not ISO instants, in the page header', async () => {
    const site = await seedSite('header', ['a', 'b']);
    const html = await (
      await reportGet(site, 'from=2025-02-23&to=2025-03-02&tz=Europe/Berlin')
    ).text();
    expect(html).toContain('entries 23 Feb – 1 Mar 2025 (Europe/Berlin)');
    expect(html).not.toContain('2025-02-22T23:00:00.000Z');
  });
});

describe('cache key', () => {
  it('serves two spellings of one view from one cache entry', async () => {
    const site = await campaignSite('spellings');
    const first = `${DAY}&tz=UTC&format=json&filter=utm_source:ads&filter=utm_source:news`;
    for (let i = 0; ; i += 1) {
      const res = await reportGet(site, first, {});
      if (res.headers.get('X-Goalstep-Cache') === 'hit') break;
      if (i > 50) throw new Error('never cached');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Same instants, zone and window spelled otherwise, the ready version named, filters and
    // parameters in another order.
    const second =
      'format=json&filter=utm_source:news&to=2025-03-04T00:00:00Z&tz=utc&window=168h' +
      '&from=2025-03-03T00:00&version=1&top=5&filter=utm_source:ads';
    const res = await reportGet(site, second, {});
    expect(res.headers.get('X-Goalstep-Cache')).toBe('hit');
    expect(counts((await res.json()) as ViewJson)).toEqual([3, 2]);
  });
});
