/**
 * D1 rows written (what D1 bills, index entries included) by the progress writer per 1,000
 * events of web-shaped traffic, read from the real local D1's result `meta`. Prints one JSON
 * line for docs/BENCHMARKS.md; asserts that rewriting unchanged people writes nothing.
 */
import { env } from 'cloudflare:test';
import { toEngineGoal } from '../../src/funnel/definition';
import { computeAttempts } from '../../src/funnel/engine';
import { writeProgress, type PersonProgress } from '../../src/funnel/progress-store';
import { seededRandom } from '../../scripts/lib/random.mjs';
import { counting } from './helpers';

const STEPS = ['page_viewed', 'product_added_to_cart', 'checkout_started', 'checkout_completed'];
const START = Date.UTC(2025, 1, 23);
/** Segments vary by person like web traffic: a few sources, devices, browsers, countries. */
const segmentOf = (person: string) => {
  const p = Number(person.slice(3));
  return {
    utmSource: [null, 'google', 'newsletter', 'facebook'][p % 4] ?? null,
    utmMedium: [null, 'cpc', 'email'][p % 3] ?? null,
    utmCampaign: [null, 'spring'][p % 2] ?? null,
    referrerDomain: [null, 'google.com', 'bing.com', 't.co', 'news.ycombinator.com'][p % 5] ?? null,
    device: ['desktop', 'mobile', 'tablet'][p % 3] ?? null,
    browser: ['Chrome', 'Safari', 'Firefox', 'Edge'][(p >> 2) % 4] ?? null,
    os: ['Windows', 'macOS', 'iOS', 'Android', 'Linux'][(p >> 1) % 5] ?? null,
    country: ['US', 'DE', 'GB', 'FR', 'CA', 'NL', 'ES', 'IT', 'AU', 'BR'][(p >> 3) % 10] ?? null,
  };
};

type Event = Parameters<typeof computeAttempts>[0][number];

/**
 * Sends `events` events in batches of 100 the way the site object does: after each batch,
 * every person it touched is recomputed from all of their events so far and written, and the
 * rollup log is folded.
 */
async function run(siteId: string, eventsPerPerson: number, events: number) {
  const goal = toEngineGoal(
    { id: 'checkout', version: 1, name: 'Checkout' },
    { steps: STEPS.map((event) => ({ event })), window: '7d', mode: 'ordered' },
  );
  const next = seededRandom(eventsPerPerson);
  const people = new Map<string, Event[]>();
  const stream: Array<[string, Event]> = [];
  // Arrival order is event time, about one new person a second (some 3,600 an hour); each
  // person's later events follow within minutes, as live traffic does.
  for (let p = 0; stream.length < events; p += 1) {
    let t = START + p * 1000;
    let k = 0;
    for (let i = 0; i < eventsPerPerson; i += 1) {
      // Page views, and with falling odds the next step of the funnel.
      if (i > 0 && k < 3 && next() < ([0.2, 0.4, 0.6][k] as number)) k += 1;
      const name = STEPS[k] as string;
      const event = { messageId: `${p}-${i}`, ts: t, type: 'track', event: name, properties: null };
      stream.push([`a:p${p}`, event]);
      t += Math.floor(next() * 300_000);
    }
  }
  stream.sort(([, a], [, b]) => a.ts - b.ts);
  const meter = counting(env.DB);
  for (let i = 0; i < events; i += 100) {
    const touched = new Set<string>();
    for (const [person, event] of stream.slice(i, i + 100)) {
      people.set(person, [...(people.get(person) ?? []), event]);
      touched.add(person);
    }
    const progress: PersonProgress[] = [...touched].map((person) => {
      const segment = segmentOf(person);
      const attempts = computeAttempts(people.get(person) ?? [], goal).map((a) => ({
        ...a,
        segment,
      }));
      return { personId: person, attempts: new Map([['checkout#1', attempts]]) };
    });
    // A batch here is some 100 s of traffic: the site object would fold its rollup log once.
    await writeProgress(meter.db, siteId, [goal], progress, { fold: true });
  }
  const perThousand = Math.round((meter.written() / events) * 1000);
  // The same people again, unchanged: what an idle recompute (a non-step event) costs.
  const before = meter.written();
  const all: PersonProgress[] = [...people.keys()].slice(0, 100).map((person) => ({
    personId: person,
    attempts: new Map([
      [
        'checkout#1',
        computeAttempts(people.get(person) ?? [], goal).map((a) => ({
          ...a,
          segment: segmentOf(person),
        })),
      ],
    ]),
  }));
  await writeProgress(meter.db, siteId, [goal], all, { fold: true });
  const unchanged = meter.written() - before;
  return { eventsPerPerson, events, rowsWrittenPer1000Events: perThousand, unchanged };
}

it('writes nothing for unchanged people; prints rows written per 1,000 events', async () => {
  const results = [];
  for (const perPerson of [1, 3, 10]) {
    results.push(await run(`cost-${perPerson}`, perPerson, 3000));
  }
  console.log(JSON.stringify({ progressRowsWritten: results }));
  for (const r of results) {
    expect(r.rowsWrittenPer1000Events).toBeGreaterThan(0);
    // Rows equal to what is stored are not written again, nothing is logged, and folding an
    // empty log writes nothing.
    expect(r.unchanged).toBe(0);
  }
}, 120_000);
