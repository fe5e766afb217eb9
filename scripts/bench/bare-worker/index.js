// The platform floor for goalstep's beacon path: a Worker that only inserts the same rows into
// the same local D1 schema (one batch record plus one row per event, in one db.batch), with no
// validation, dedupe bookkeeping or Durable Object. Used only by `npm run bench`.
export default {
  async fetch(request, env) {
    if (request.method === 'GET') return Response.json({ ok: true });
    const { batch } = await request.json();
    const batchId = crypto.randomUUID();
    const now = Date.now();
    // All rows in one statement with the events as one JSON parameter: the fastest way found
    // to insert a batch into D1 (one statement per row spends more in D1's client than in the
    // inserts), so the floor is the platform's, not a naive Worker's.
    const rows = batch.map((e) => [
      e.messageId,
      e.type,
      e.event ?? null,
      e.anonymousId ?? null,
      e.userId ?? null,
      null,
      Date.parse(e.timestamp),
      e.timestamp,
      e.properties ? JSON.stringify(e.properties) : null,
      null,
      e.context ? JSON.stringify(e.context) : null,
    ]);
    const statements = [
      env.DB.prepare(
        'INSERT INTO batches (id, site_id, received_at, message_ids) VALUES (?, ?, ?, ?)',
      ).bind(batchId, 'bare', now, JSON.stringify(batch.map((e) => e.messageId))),
      env.DB.prepare(
        `INSERT INTO events (site_id, message_id, type, event, anonymous_id, user_id,
           previous_id, ts, client_ts, received_at, properties, traits, context, batch_id)
         SELECT 'bare', e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3,
           e.value ->> 4, e.value ->> 5, e.value ->> 6, e.value ->> 7, ?1, e.value ->> 8,
           e.value ->> 9, e.value ->> 10, ?2
         FROM json_each(?3) e WHERE 1 ON CONFLICT DO NOTHING`,
      ).bind(now, batchId, JSON.stringify(rows)),
    ];
    await env.DB.batch(statements);
    return Response.json({ inserted: batch.length });
  },
};
