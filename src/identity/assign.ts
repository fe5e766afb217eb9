/**
 * The smallest identity terms shared by the graph and the site object: a device link and the
 * one order every identity rule uses (docs/IDENTITY.md).
 */

/** A device-to-user link made by an event carrying both ids, or by an alias of a device id. */
export interface Link {
  anonymousId: string;
  userId: string;
  ts: number;
  messageId: string;
}

/** Orders links (and events) by event time, ties by message id. */
export function byLinkTime(
  a: { ts: number; messageId: string },
  b: { ts: number; messageId: string },
): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}
