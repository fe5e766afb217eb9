/**
 * How ingest and the admin people endpoints read ids (docs/IDENTITY.md, "Ids"): placeholders
 * hidden by Unicode forms, quotes or zeros, alias rejections that name the right field, and
 * numbers that cannot be ids. Expected outcomes are worked out by hand from the rules.
 */
import { importBatch, seedSite, settle } from './helpers';
import { identityStats, importText, peopleAction, revertAction } from './identity-helpers';

const STAMP = '"timestamp":"2025-03-03T10:00:00.000Z"';

interface IngestAnswer {
  accepted: number;
  warnings: Array<{ index: number; code: string; message: string }>;
  rejected: Array<{ index: number; code: string; path: string; message: string }>;
}

describe('placeholder ids in disguise (C13)', () => {
  it('drops placeholders hidden by Unicode forms, format chars, quotes and zeros', async () => {
    const site = await seedSite('junk-forms', ['seen']);
    // Each form as JSON text; two devices send each, so a form kept as an id joins them.
    const junk = [
      '"\\u200bguest\\u200b"',
      '"NULL\\u00ad"',
      '"\\uff4e\\uff55\\uff4c\\uff4c"',
      '"\\"null\\""',
      '"\'null\'"',
      '"0000"',
      '"\\uff10\\uff10"',
      '"\\"\\u200bundefined\\""',
    ];
    // Real ids that only look close: each must stay an id (and join its two devices).
    const real = ['"\'ann\'"', '"00042"', '"null-island"', '"\\"\\"x\\"\\""'];
    const forms = [...junk, ...real];
    const events = forms.flatMap((form, i) =>
      ['a', 'b'].map(
        (device) =>
          `{"type":"track","event":"seen","anonymousId":"dev-${i}-${device}","userId":${form},` +
          `"messageId":"jf-${i}-${device}",${STAMP}}`,
      ),
    );
    const res = await importText(site, `{"batch":[${events.join(',')}]}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as IngestAnswer;
    expect(body.accepted).toBe(forms.length * 2);
    const warned = body.warnings.filter((w) => w.code === 'junk_id_dropped').map((w) => w.index);
    expect(warned).toEqual(Array.from({ length: junk.length * 2 }, (_, i) => i));
    await settle(site);

    // Junk: two lone devices per form. Real: one person per form (0042 is not all zeros).
    expect(await identityStats(site)).toMatchObject({
      users: real.length,
      people: junk.length * 2 + real.length,
    });
  });
});

describe('alias rejections', () => {
  it('names the field an alias lacks and why it was dropped', async () => {
    const site = await seedSite('alias-why', ['seen']);
    const alias = (ids: Record<string, unknown>, n: number) => ({
      type: 'alias',
      ...ids,
      messageId: `aw-${n}`,
      timestamp: '2025-03-03T10:00:00.000Z',
    });
    const res = await importBatch(site, [
      alias({ previousId: 'dev-1', userId: 'guest' }, 0),
      alias({ previousId: 'dev-1', userId: 'x'.repeat(201) }, 1),
      alias({ previousId: 'dev-1' }, 2),
      alias({ previousId: 'NULL', userId: 'ann' }, 3),
      // One valid event, so that the batch is answered 200 with its rejections listed.
      alias({ previousId: 'dev-1', userId: 'ann' }, 4),
    ]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as IngestAnswer;
    expect(body.rejected.map((r) => [r.index, r.code, r.path])).toEqual([
      [0, 'missing_alias_ids', 'userId'],
      [1, 'missing_alias_ids', 'userId'],
      [2, 'missing_alias_ids', 'userId'],
      [3, 'missing_alias_ids', 'previousId'],
    ]);
    const messages = body.rejected.map((r) => r.message);
    expect(messages[0]).toMatch(/userId .*placeholder/);
    expect(messages[1]).toMatch(/userId .*over 200 characters/);
    expect(messages[2]).toMatch(/userId is missing/);
    expect(messages[3]).toMatch(/previousId .*placeholder/);
  });
});

describe('numbers that are not ids', () => {
  it('refuses a non-finite number as an id at ingest and in admin, one message', async () => {
    const site = await seedSite('num-inf', ['seen']);
    await importBatch(site, [{ type: 'track', event: 'seen', userId: 'x', messageId: 'ni-0' }]);
    const res = await importText(
      site,
      `{"batch":[{"type":"track","event":"seen","userId":1e400,"messageId":"ni-1",${STAMP}},` +
        `{"type":"track","event":"seen","userId":"ok","messageId":"ni-2",${STAMP}}]}`,
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as IngestAnswer;
    expect(body.rejected).toEqual([
      {
        index: 0,
        code: 'invalid_field',
        path: 'userId',
        message: 'userId: a non-finite number is not an id',
      },
    ]);

    const split = await peopleAction(site, 'split', '{"userId":1e400}');
    expect(split.status).toBe(400);
    expect(await split.json()).toMatchObject({
      code: 'invalid_field',
      message: 'userId: a non-finite number is not an id',
    });
    const merge = await peopleAction(site, 'merge', '{"userIds":[-1e400,"x"]}');
    expect(merge.status).toBe(400);
    expect(await merge.json()).toMatchObject({
      code: 'invalid_field',
      message: 'userIds.0: a non-finite number is not an id',
    });
  });

  it('takes action ids as plain digits only', async () => {
    const site = await seedSite('num-action', ['seen']);
    for (const id of ['1e3', '0x10', '1.0', '+1', ' 1']) {
      const res = await revertAction(site, id as unknown as number);
      expect(res.status, id).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid_action_id' });
    }
    // Plain digits reach the object, which knows no such action.
    expect((await revertAction(site, 1000)).status).toBe(404);
  });
});
