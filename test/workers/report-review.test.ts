/**
 * A reviewer's attacks on the report URL, each a regression test: user-given names that are
 * Object.prototype members, synthetic breakdown groups against tracked literals, empty and
 * malformed parameters, and the cache key of pinned versions. Expected numbers are worked out by
 * hand from docs/METRICS.md.
 */
import {
  FRESH,
  importBatch,
  reportGet,
  seedSite,
  settle,
  track,
  waitReady,
  type TestSite,
} from './helpers';

const T = (minutes: number) => new Date(Date.UTC(2025, 2, 3, 10, minutes)).toISOString();
const DAY = 'from=2025-03-03&to=2025-03-04';

async function errorOf(site: TestSite, query: string): Promise<[number, string]> {
  const res = await reportGet(site, `${query}&format=json`);
  const body = (await res.json()) as { code?: string };
  return [res.status, body.code ?? ''];
}

describe('user-given names that Object.prototype also has', () => {
  const names = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty'];

  it('answers 400 invalid_breakdown, on progress rows and on stored events', async () => {
    const site = await seedSite('proto-breakdown', ['a', 'b']);
    await importBatch(site, [track('a', { anonymousId: 'p1' }, 'm1', T(0))]);
    await settle(site);
    for (const name of names) {
      expect(await errorOf(site, `${DAY}&breakdown=${name}`)).toEqual([400, 'invalid_breakdown']);
      expect(await errorOf(site, `${DAY}&breakdown=${name}&mode=strict`)).toEqual([
        400,
        'invalid_breakdown',
      ]);
    }
  });

  it('answers 400 invalid_filter, on progress rows and on stored events', async () => {
    const site = await seedSite('proto-filter', ['a', 'b']);
    for (const name of names) {
      expect(await errorOf(site, `${DAY}&filter=${name}:x`)).toEqual([400, 'invalid_filter']);
      expect(await errorOf(site, `${DAY}&filter=${name}:x&mode=strict`)).toEqual([
        400,
        'invalid_filter',
      ]);
    }
  });

  it('treats a tracked property named constructor as data, in breakdowns and filters', async () => {
    const site = await seedSite('proto-property', ['a', 'b']);
    const withProps = (properties: Record<string, unknown>) => properties;
    await importBatch(site, [
      {
        ...track('a', { anonymousId: 'p1' }, 'm1', T(0)),
        properties: withProps({ constructor: 'x' }),
      },
      track('a', { anonymousId: 'p2' }, 'm2', T(1)),
    ]);
    await settle(site);
    const res = await reportGet(site, `${DAY}&breakdown=property:constructor&format=json`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { breakdown: { groups: Array<{ entered: number }> } };
    // p1 has the value x, p2 has none: two groups of one person each.
    expect(body.breakdown.groups.map((g) => g.entered)).toEqual([1, 1]);
    const filtered = await reportGet(site, `${DAY}&filter=property:constructor:x&format=json`);
    expect(((await filtered.json()) as { entered: number }).entered).toBe(1);
  });
});

describe('breakdown groups no tracked value can name', () => {
  /** p1, p2 from source "other", p3 from "(none)", p4 from "x", p5 without a source; all do a. */
  async function literalSite(siteId: string): Promise<TestSite> {
    const site = await seedSite(siteId, ['a', 'b']);
    const from = (source: string) => ({ campaign: { source } });
    await importBatch(site, [
      { ...track('a', { anonymousId: 'p1' }, 'm1', T(0)), context: from('other') },
      { ...track('a', { anonymousId: 'p2' }, 'm2', T(1)), context: from('other') },
      { ...track('a', { anonymousId: 'p3' }, 'm3', T(2)), context: from('(none)') },
      { ...track('a', { anonymousId: 'p4' }, 'm4', T(3)), context: from('x') },
      track('a', { anonymousId: 'p5' }, 'm5', T(4)),
    ]);
    await settle(site);
    return site;
  }
  type Groups = {
    breakdown: { groups: Array<{ value: string | null; kind: string; entered: number }> };
  };

  it('keeps tracked "other" and "(none)" apart from the other and no-value groups', async () => {
    const site = await literalSite('literal-groups');
    const res = await reportGet(site, `${DAY}&breakdown=utm_source&top=2&format=json`);
    const groups = ((await res.json()) as Groups).breakdown.groups;
    // "other" 2, then the ties of 1 by value: "(none)"; "x" and the missing one fold into other.
    expect(groups.map((g) => [g.value, g.kind, g.entered])).toEqual([
      ['other', 'value', 2],
      ['(none)', 'value', 1],
      [null, 'other', 2],
    ]);
    const all = await reportGet(site, `${DAY}&breakdown=utm_source&format=json`);
    expect(((await all.json()) as Groups).breakdown.groups.map((g) => [g.value, g.kind])).toEqual([
      ['other', 'value'],
      ['(none)', 'value'],
      ['x', 'value'],
      [null, 'none'],
    ]);

    const page = await (await reportGet(site, `${DAY}&breakdown=utm_source&top=2`)).text();
    expect(page).toContain('<tr data-group="other" data-kind="value"><td>other</td>');
    expect(page).toContain('<tr data-kind="other"><td><em class="synthetic">Other values</em>');
  });

  it('filters a tracked "(none)" apart from people without a value', async () => {
    const site = await literalSite('literal-filter');
    const entered = async (query: string) =>
      ((await (await reportGet(site, `${DAY}&${query}&format=json`)).json()) as { entered: number })
        .entered;
    expect(await entered('filter=utm_source:(none)')).toBe(1);
    expect(await entered('filter=utm_source:other')).toBe(2);
    expect(await entered('filter=utm_source')).toBe(1);
    expect(await entered('filter=utm_source&filter=utm_source:x')).toBe(2);
  });
});

describe('parameters', () => {
  it('reads every empty parameter as its default, format included', async () => {
    const site = await seedSite('empty-params', ['a', 'b']);
    const page = await reportGet(site, `${DAY}&format=`);
    expect(page.status).toBe(200);
    expect(page.headers.get('Content-Type')).toContain('text/html');
    const empty = 'mode=&window=&breakdown=&top=&interval=&version=&filter=&tz=&format=';
    expect((await reportGet(site, `from=&to=&${empty}`)).status).toBe(200);
    const json = await reportGet(site, `${DAY}&mode=&window=&top=&interval=&tz=&format=json`);
    expect(json.status).toBe(200);
  });

  it('refuses times that do not exist with invalid_time naming the parameter', async () => {
    const site = await seedSite('bad-times', ['a', 'b']);
    const cases = [
      ['from=2025-01-10T25:00&to=2025-01-12', 'from'],
      ['from=2025-01-10&to=2025-01-11T23:59:60', 'to'],
      ['from=2025-01-10T10:60&to=2025-01-12', 'from'],
      ['from=2025-01-10T10:00%2B25:00&to=2025-01-12', 'from'],
    ];
    for (const [query, name] of cases) {
      const res = await reportGet(site, `${query}&format=json`);
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code, query).toBe('invalid_time');
      expect(body.message.startsWith(`${name} `), body.message).toBe(true);
    }
    // The last real minute and second of a day are fine.
    expect(
      (await reportGet(site, 'from=2025-01-10T23:59:59&to=2025-01-11&format=json')).status,
    ).toBe(200);
  });

  it('takes top as plain digits only', async () => {
    const site = await seedSite('top-digits', ['a', 'b']);
    for (const top of ['1e1', '0x10', '+5', '5.0', ' 5', '0', '51']) {
      expect(await errorOf(site, `${DAY}&top=${encodeURIComponent(top)}`), top).toEqual([
        400,
        'invalid_top',
      ]);
    }
    expect((await reportGet(site, `${DAY}&top=10&format=json`)).status).toBe(200);
  });
});

describe('cache key', () => {
  it('does not serve the page rendered for a named version to the URL without one', async () => {
    const site = await seedSite('pinned-cache', ['a', 'b']);
    await waitReady(site.siteId, 'goal', 1);
    const pinned = await reportGet(site, `${DAY}&version=1`, {});
    expect(pinned.status).toBe(200);
    expect(await pinned.text()).toContain('version=1');

    const plain = await reportGet(site, DAY, {});
    expect(plain.headers.get('X-Goalstep-Cache')).toBe('miss');
    expect(await plain.text()).not.toContain('version=1');
    // The JSON of the two spellings is one answer, and shares one entry.
    await (await reportGet(site, `${DAY}&version=1&format=json`, {})).text();
    const json = await reportGet(site, `${DAY}&format=json`, {});
    expect(json.headers.get('X-Goalstep-Cache')).toBe('hit');
    await json.text();
  });
});

describe('view form', () => {
  const form = async (site: TestSite, query: string) => {
    const html = await (await reportGet(site, query)).text();
    return html.slice(html.indexOf('<form'), html.indexOf('</form>'));
  };
  const selectedMode = (form: string) =>
    /<option value="([^"]*)" selected=""/.exec(
      /<select name="mode">(.*?)<\/select>/s.exec(form)?.[1] ?? '',
    )?.[1];
  const windowValue = (form: string) =>
    /<input[^>]*name="window"[^>]*value="([^"]*)"/.exec(form)?.[1];

  it("leaves mode and window empty unless the view overrides the goal's", async () => {
    // The goal is ordered with a 7d window.
    const site = await seedSite('form-defaults', ['a', 'b']);
    const plain = await form(site, DAY);
    expect([selectedMode(plain), windowValue(plain)]).toEqual(['', '']);
    // Asking for the goal's own values is no override either.
    const same = await form(site, `${DAY}&mode=ordered&window=168h`);
    expect([selectedMode(same), windowValue(same)]).toEqual(['', '']);
    const overridden = await form(site, `${DAY}&mode=strict&window=2d`);
    expect([selectedMode(overridden), windowValue(overridden)]).toEqual(['strict', '2d']);
  });
});
