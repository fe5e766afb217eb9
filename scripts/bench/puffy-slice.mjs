/**
 * Real-shaped traffic for the cost benchmark: the first events of the Puffy week in event-time
 * order (a visitor's events minutes apart, with everyone else's in between), moved by one
 * constant so the slice ends just before now and the ingest path's back-fill window takes it.
 */
import { readRows, toMessages } from '../lib/puffy.mjs';

const HOUR_MS = 3_600_000;

/**
 * The first `events` messages of the CSVs in `dir` (identify calls included, as
 * `scripts/replay.mjs` sends them) in event-time order, file order breaking ties, with what
 * they hold: people (a browser id, joined to the user id of any message that carries both),
 * events per person, event types and the hours of event time.
 */
export async function readPuffySlice(dir, events) {
  const all = [];
  for await (const record of readRows(dir)) all.push(...toMessages(record));
  const messages = all
    .map((message, order) => ({ message, order, ts: Date.parse(message.timestamp) }))
    .filter(({ ts }) => Number.isFinite(ts))
    .sort((a, b) => a.ts - b.ts || a.order - b.order)
    .slice(0, events)
    .map(({ message }) => message);
  // A person is a user id with the browser ids seen with it, or a browser id seen alone.
  const users = new Set(messages.map((m) => m.userId).filter((id) => id !== undefined));
  const linked = new Set(messages.filter((m) => m.userId).map((m) => m.anonymousId));
  const devices = new Set(messages.map((m) => m.anonymousId).filter((id) => id !== undefined));
  const people = users.size + [...devices].filter((id) => !linked.has(id)).length;
  const withoutIds = messages.filter((m) => !m.anonymousId && !m.userId).length;
  const types = {};
  for (const m of messages) {
    const type = m.type === 'track' ? m.event : m.type;
    types[type] = (types[type] ?? 0) + 1;
  }
  const first = Date.parse(messages[0].timestamp);
  const last = Date.parse(messages.at(-1).timestamp);
  return {
    messages,
    summary: {
      events: messages.length,
      people,
      browserIds: devices.size,
      withoutIds,
      eventsPerPerson: +((messages.length - withoutIds) / people).toFixed(2),
      types,
      from: messages[0].timestamp,
      to: messages.at(-1).timestamp,
      hours: +((last - first) / HOUR_MS).toFixed(1),
    },
  };
}

/**
 * The messages with every timestamp moved by one constant so the last one falls on `endAt`
 * (ms): the spacing between events stays the real one.
 */
export function shiftToEnd(messages, endAt) {
  const shift = endAt - Date.parse(messages.at(-1).timestamp);
  return messages.map((m) => ({
    ...m,
    timestamp: new Date(Date.parse(m.timestamp) + shift).toISOString(),
  }));
}

/** `messages` cut into consecutive batches of `size`. */
export function batchesOf(messages, size) {
  const batches = [];
  for (let i = 0; i < messages.length; i += size) batches.push(messages.slice(i, i + size));
  return batches;
}
