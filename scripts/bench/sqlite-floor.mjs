/**
 * The physical floor: the same rows goalstep's beacon path writes (a batch record and one
 * `event_packs` row per hour of event time, same schema) inserted straight into SQLite with
 * `node:sqlite`, one transaction per batch, on the same disk.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeBatch } from './load.mjs';

/** Inserts `batches` batches of `batchSize` events; resolves with events per second. */
export async function sqliteFloor({ migrationsDir, batchSize, batches }) {
  // Imported lazily: node:sqlite exists only on the Node 22 that npm scripts run.
  const { DatabaseSync } = await import('node:sqlite');
  const dir = mkdtempSync(join(tmpdir(), 'goalstep-sqlite-floor-'));
  const db = new DatabaseSync(join(dir, 'floor.sqlite'));
  try {
    db.exec('PRAGMA journal_mode = WAL');
    for (const file of readdirSync(migrationsDir)
      .filter((f) => f.endsWith('.sql'))
      .sort()) {
      db.exec(
        readFileSync(join(migrationsDir, file), 'utf8').replaceAll('--> statement-breakpoint', ''),
      );
    }
    const insertBatch = db.prepare(
      'INSERT INTO batches (id, site_id, received_at, message_ids) VALUES (?, ?, ?, ?)',
    );
    const insertPack = db.prepare(
      `INSERT INTO event_packs (site_id, hour, batch_id, received_at, events)
       VALUES (?, ?, ?, ?, ?)`,
    );
    const bodies = Array.from({ length: batches }, () => makeBatch(batchSize));
    const started = performance.now();
    for (const { batch } of bodies) {
      const now = Date.now();
      const batchId = crypto.randomUUID();
      const hours = new Map();
      for (const e of batch) {
        const ts = Date.parse(e.timestamp);
        const hour = Math.floor(ts / 3_600_000) * 3_600_000;
        const entry = [e.messageId, e.type, e.event, e.anonymousId, null, null, ts, e.timestamp];
        hours.set(hour, [...(hours.get(hour) ?? []), [...entry, e.properties, null, e.context]]);
      }
      db.exec('BEGIN');
      insertBatch.run(batchId, 'floor', now, JSON.stringify(batch.map((e) => e.messageId)));
      for (const [hour, entries] of hours) {
        insertPack.run('floor', hour, batchId, now, JSON.stringify(entries));
      }
      db.exec('COMMIT');
    }
    const seconds = (performance.now() - started) / 1000;
    return { batchSize, eventsPerSecond: Math.round((batches * batchSize) / seconds) };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
