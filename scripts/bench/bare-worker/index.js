// The platform floor for goalstep's beacon path: a Worker that only inserts the same rows into
// the same local D1 schema (one batch record plus one row per event, in one db.batch), with no
// validation, dedupe bookkeeping or Durable Object. Used only by `npm run bench`.
export default {
  async fetch(request, env) {
    if (request.method === 'GET') return Response.json({ ok: true });
    const { batch } = await request.json();
    const batchId = crypto.randomUUID();
    const now = Date.now();
    const insert = env.DB.prepare(
      `INSERT INTO events (site_id, message_id, type, event, anonymous_id, user_id, previous_id,
         ts, client_ts, received_at, properties, traits, context, batch_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    const statements = [
      env.DB.prepare(
        'INSERT INTO batches (id, site_id, received_at, message_ids) VALUES (?, ?, ?, ?)',
      ).bind(batchId, 'bare', now, JSON.stringify(batch.map((e) => e.messageId))),
      ...batch.map((e) =>
        insert.bind(
          'bare',
          e.messageId,
          e.type,
          e.event ?? null,
          e.anonymousId ?? null,
          e.userId ?? null,
          null,
          Date.parse(e.timestamp),
          e.timestamp,
          now,
          e.properties ? JSON.stringify(e.properties) : null,
          null,
          e.context ? JSON.stringify(e.context) : null,
          batchId,
        ),
      ),
    ];
    await env.DB.batch(statements);
    return Response.json({ inserted: batch.length });
  },
};
