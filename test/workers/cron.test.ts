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
import { counts, importBatch, packEvents, report, seedSite, track } from './helpers';

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
    // Written the way the ingest path writes, minus the Durable Object call that failed.
    const receivedAt = Date.now() - 5 * 60_000;
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO batches (id, site_id, received_at, message_ids) VALUES ('b-lost', ?, ?, ?)`,
      ).bind(site.siteId, receivedAt, JSON.stringify(['lost-1', 'lost-2'])),
      packEvents(
        site.siteId,
        'b-lost',
        receivedAt,
        [
          { messageId: 'lost-1', event: 'view', ts: Date.parse(ts(0)) },
          { messageId: 'lost-2', event: 'buy', ts: Date.parse(ts(30)) },
        ].map((e) => ({ ...e, anonymousId: 'lost-device' })),
      ),
    ]);
    expect(counts(await report(site, '2025-03-03', '2025-03-04'))).toEqual([0, 0]);

    await runCron(Date.now());

    // Applied: the site object deleted the batch's record.
    const pending = await env.DB.prepare('SELECT id FROM batches WHERE id = ?')
      .bind('b-lost')
      .first();
    expect(pending).toBeNull();
    expect(counts(await report(site, '2025-03-03', '2025-03-04'))).toEqual([1, 1]);
  });
});
