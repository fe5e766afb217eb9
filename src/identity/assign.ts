/**
 * Which person an event counts for (docs/IDENTITY.md). Pure: the event and the links of its
 * anonymous id in, a person key out. Keys are `u:<userId>` or `a:<anonymousId>`.
 */

/** A device-to-user link made by an identify, an alias or any event carrying both ids. */
export interface Link {
  anonymousId: string;
  userId: string;
  ts: number;
  messageId: string;
}

export interface IdentifiedEvent {
  messageId: string;
  ts: number;
  anonymousId: string | null;
  userId: string | null;
}

export const userKey = (userId: string) => `u:${userId}`;
export const anonymousKey = (anonymousId: string) => `a:${anonymousId}`;

/** Orders links by event time, ties by message id. */
export function byLinkTime(a: Link, b: Link): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}

/**
 * The person an event belongs to. A user id on the event decides. Otherwise the device's links
 * decide by event time: the latest link at or before the event, or, for events before the first
 * link, that first link (identification is retroactive). A device never linked is its own person.
 *
 * @param links the links of the event's anonymous id, sorted with `byLinkTime`
 */
export function personOf(event: IdentifiedEvent, links: readonly Link[]): string {
  if (event.userId !== null) return userKey(event.userId);
  if (event.anonymousId === null) throw new Error('event without any id reached identity');
  const [first] = links;
  if (!first) return anonymousKey(event.anonymousId);

  let current = first;
  for (const link of links) {
    if (link.ts > event.ts) break;
    current = link;
  }
  return userKey(current.userId);
}
