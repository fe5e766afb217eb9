/**
 * docs/INGEST.md: `event_name_truncated` (a warning, the event kept) is "an event or page name
 * over 255 bytes was cut on a code-point boundary"; the guards list "255 bytes per key" and no
 * other cap on a name. Today an ASCII event name of 201 characters or more is rejected outright
 * with `invalid_field` ("Too big: expected string to have <=200 characters"), by the zod schema
 * (src/ingest/schema.ts `event: z.string().max(200)`, `name` the same): the event is lost, and
 * only names of at most 200 UTF-16 units that are over 255 bytes (emoji, accents) are ever
 * truncated as documented.
 */
import { ingest, seedSite, track } from './helpers';

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

interface Answer {
  accepted: number;
  rejected: Array<{ index: number; code: string }>;
  warnings: Array<{ index: number; code: string }>;
}

describe('long event names', () => {
  it('keeps a 230-character ASCII event name (under 255 bytes) whole', async () => {
    const site = await seedSite('longname-a', ['view']);
    const res = await ingest(site, {
      batch: [track('e'.repeat(230), { anonymousId: 'ln-a' }, 'ln-a-1', ago(1000))],
    });
    const answer = (await res.json()) as Answer;
    expect(answer).toMatchObject({ accepted: 1, rejected: [] });
  });

  it('truncates a 300-character ASCII event name with event_name_truncated', async () => {
    const site = await seedSite('longname-b', ['view']);
    const res = await ingest(site, {
      batch: [
        track('n'.repeat(300), { anonymousId: 'ln-b' }, 'ln-b-1', ago(1000)),
        { type: 'page', name: 'p'.repeat(300), anonymousId: 'ln-b', messageId: 'ln-b-2' },
      ],
    });
    const answer = (await res.json()) as Answer;
    expect(answer.rejected).toEqual([]);
    expect(answer.accepted).toBe(2);
    expect(answer.warnings.map((w) => w.code)).toEqual([
      'event_name_truncated',
      'event_name_truncated',
    ]);
  });
});
