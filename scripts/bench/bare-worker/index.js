// The platform floor for goalstep's beacon path: a Worker that only inserts the same rows into
// the same local D1 schema (one batch record plus one `event_packs` row per hour of event time,
// in one db.batch), with no validation, guardrails or Durable Object. Used only by
// `npm run bench`.
export default {
  async fetch(request, env) {
    if (request.method === 'GET') return Response.json({ ok: true });
    const { batch } = await request.json();
    const batchId = crypto.randomUUID();
    const now = Date.now();
    // The events as one JSON parameter, packed by hour in SQL: the fastest way found to insert
    // a batch into D1 (one statement per row spends more in D1's client than in the inserts),
    // so the floor is the platform's, not a naive Worker's.
    const rows = batch.map((e) => [
      e.messageId,
      e.type,
      e.event ?? null,
      e.anonymousId ?? null,
      e.userId ?? null,
      null,
      Date.parse(e.timestamp),
      e.timestamp,
      e.properties ?? null,
      null,
      e.context ?? null,
    ]);
    const statements = [
      env.DB.prepare(
        'INSERT INTO batches (id, site_id, received_at, message_ids) VALUES (?, ?, ?, ?)',
      ).bind(batchId, 'bare', now, JSON.stringify(batch.map((e) => e.messageId))),
      env.DB.prepare(
        `INSERT INTO event_packs (site_id, hour, batch_id, received_at, events)
         SELECT 'bare', ((e.value ->> 6) / 3600000) * 3600000 AS hour, ?1, ?2,
           json_group_array(json(e.value))
         FROM json_each(?3) e GROUP BY hour`,
      ).bind(batchId, now, JSON.stringify(rows)),
    ];
    await env.DB.batch(statements);
    return Response.json({ inserted: batch.length });
  },
};
