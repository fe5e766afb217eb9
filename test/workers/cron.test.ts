/**
 * The scheduled handler: it re-applies batches whose Durable Object update never happened and
 * records hourly step volumes by event time.
 */
import {
  createExecutionContext,
  createScheduledController,
  env,
  waitOnExecutionContext,
} from 'cloudflare:test';
import worker from '../../src/index';
import { recordPending } from '../../src/ingest/event-store';
import { counts, importBatch, report, seedSite, settle, track } from './helpers';

const HOUR = 3_600_000;

async function runCron(scheduledTime: number): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(
    createScheduledController({ scheduledTime, cron: '*/15 * * * *' }),
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
}

describe('scheduled handler', () => {
  it('records hourly event counts for the hours just behind the run', async () => {
    const site = await seedSite('volumes', ['view', 'buy']);
    const base = Date.UTC(2025, 2, 3, 10);
    const events = [
      track('view', { anonymousId: 'v1' }, 'vol-1', new Date(base + 60_000).toISOString()),
      track('view', { anonymousId: 'v2' }, 'vol-2', new Date(base + 120_000).toISOString()),
      track('buy', { anonymousId: 'v1' }, 'vol-3', new Date(base + HOUR + 5_000).toISOString()),
    ];
    const res = await importBatch(site, events);
    expect(res.status).toBe(200);
    await settle(site); // the site object's write cycle copies them to D1

    await runCron(base + 2 * HOUR + 15 * 60_000);

    const { results } = await env.DB.prepare(
      'SELECT event, hour, count FROM step_volumes WHERE site_id = ? ORDER BY hour, event',
    )
      .bind(site.siteId)
      .all();
    expect(results).toEqual([
      { event: 'view', hour: base, count: 2 },
      { event: 'buy', hour: base + HOUR, count: 1 },
    ]);
  });

  it('never lets a run for an earlier time replace a count that saw more of the hour', async () => {
    const site = await seedSite('volumes-past', ['view', 'buy']);
    const at = (minute: number) => Date.UTC(2025, 2, 3, 7, minute);
    // Six views in 07:00–08:00: four before 07:45, two after.
    const minutes = [5, 10, 20, 40, 50, 55];
    const res = await importBatch(
      site,
      minutes.map((m, i) =>
        track('view', { anonymousId: `p${i}` }, `past-${i}`, new Date(at(m)).toISOString()),
      ),
    );
    expect(res.status).toBe(200);
    await settle(site);
    const stored = () =>
      env.DB.prepare(
        `SELECT count, counted_to AS countedTo FROM step_volumes
         WHERE site_id = ? AND event = 'view' AND hour = ?`,
      )
        .bind(site.siteId, at(0))
        .first<{ count: number; countedTo: number }>();

    // 07:30 sees three views; 09:15 sees the whole hour, six.
    await runCron(at(30));
    expect(await stored()).toEqual({ count: 3, countedTo: at(30) });
    await runCron(at(0) + 2 * HOUR + 15 * 60_000);
    expect(await stored()).toEqual({ count: 6, countedTo: at(60) });

    // A replayed 07:45 slot sees four: the finished hour keeps its six.
    await runCron(at(45));
    expect(await stored()).toEqual({ count: 6, countedTo: at(60) });
  });

  it('applies a batch that was stored in D1 but never reached the site object', async () => {
    const site = await seedSite('reconcile', ['view', 'buy']);
    const ts = (s: number) => new Date(Date.UTC(2025, 2, 3, 10, 0, s)).toISOString();
    // Written the way the ingest path writes when the Durable Object call failed.
    const receivedAt = Date.now() - 5 * 60_000;
    const event = (messageId: string, name: string, at: string) => ({
      messageId,
      type: 'track' as const,
      event: name,
      anonymousId: 'lost-device',
      userId: null,
      previousId: null,
      ts: Date.parse(at),
      clientTs: null,
      properties: null,
      traits: null,
      context: {},
    });
    await recordPending(env.DB, {
      siteId: site.siteId,
      batchId: 'b-lost',
      receivedAt,
      events: [event('lost-1', 'view', ts(0)), event('lost-2', 'buy', ts(30))],
    });
    expect(counts(await report(site, '2025-03-03', '2025-03-04'))).toEqual([0, 0]);

    await runCron(Date.now());

    // Applied: the site object deleted the batch's record.
    const pending = await env.DB.prepare('SELECT id FROM batches WHERE id = ?')
      .bind('b-lost')
      .first();
    expect(pending).toBeNull();
    expect(counts(await report(site, '2025-03-03', '2025-03-04'))).toEqual([1, 1]);
    // And copied to D1's packs by the object's write cycle.
    const stored = await env.DB.prepare('SELECT message_id FROM events WHERE site_id = ?')
      .bind(site.siteId)
      .all<{ message_id: string }>();
    expect(stored.results.map((r) => r.message_id).sort()).toEqual(['lost-1', 'lost-2']);
  });
});
