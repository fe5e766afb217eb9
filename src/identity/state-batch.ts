/**
 * What the ingest path hands the site object: each event already shaped as the object's
 * `events` row (one JSON text the object inserts as is) and the few identity facts the object
 * reads. The shaping (segment from the user agent, property JSON) runs in the Worker, which
 * scales out, instead of in the one object per site every event of the site goes through
 * (docs/BENCHMARKS.md, processing).
 */
import { segmentOf } from '../funnel/segment';
import { chunkJson, packEntry } from '../ingest/event-packs';
import type { StoredEvent } from '../ingest/normalize';
import type { IdentityEvent } from './identity-store';

export interface StateBatch {
  /**
   * JSON arrays of `[dev, message_id, anon, user, ts, type, name, props, seg, entry]` rows,
   * `entry` being the whole event as D1's packs hold it (src/ingest/event-packs.ts), in chunks of
   * at most `PACK_CHARS` (`chunkJson`): SQLite caps a bound value.
   */
  rows: string[];
  /** The identity part of each event, in the same order. */
  facts: IdentityEvent[];
}

const propsJson = (value: Record<string, unknown> | null) => (value ? JSON.stringify(value) : null);

/**
 * The object's device key of an event: its anonymous id, '' when it has none. An alias's
 * previous id is no device of its own: an alias goes under ''.
 */
export function deviceKey(event: { type: string; anonymousId: string | null }): string {
  return event.type === 'alias' ? '' : (event.anonymousId ?? '');
}

/** Shapes stored events for `SiteState.apply`; events without a message id are left out. */
export function stateBatch(events: readonly StoredEvent[]): StateBatch {
  const rows: unknown[] = [];
  const facts: IdentityEvent[] = [];
  for (const event of events) {
    if (!event.messageId) continue;
    const alias = event.type === 'alias';
    // An alias's previous id is no device of its own: it goes to the identity facts only.
    const anonymousId = alias ? null : event.anonymousId;
    rows.push([
      deviceKey(event),
      event.messageId,
      anonymousId,
      event.userId,
      event.ts,
      event.type,
      event.event,
      // An identify call's traits stand in its properties: trait steps read them there.
      propsJson(event.type === 'identify' ? event.traits : event.properties),
      JSON.stringify(segmentOf(event.context)),
      packEntry({ ...event, messageId: event.messageId }),
    ]);
    facts.push({
      messageId: event.messageId,
      ts: event.ts,
      type: event.type,
      anonymousId,
      userId: event.userId,
      previousId: alias ? event.previousId : null,
    });
  }
  return {
    rows: chunkJson(rows.map((row) => JSON.stringify(row))).map((chunk) => chunk.json),
    facts,
  };
}
