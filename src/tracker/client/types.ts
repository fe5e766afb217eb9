/** The shapes the browser tracker shares with its stub snippet and its tests. */

/** One Segment-spec message as the tracker sends it. */
export interface TrackerEvent {
  type: 'track' | 'page' | 'identify' | 'alias';
  messageId: string;
  timestamp: string;
  anonymousId: string;
  userId?: string;
  previousId?: string;
  event?: string;
  name?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  context: Record<string, unknown>;
}

/** `window.goalstep` once the tracker has loaded. */
export interface TrackerApi {
  track(event: string, properties?: Record<string, unknown>): void;
  page(name?: string | Record<string, unknown>, properties?: Record<string, unknown>): void;
  identify(
    userId?: string | number | Record<string, unknown>,
    traits?: Record<string, unknown>,
  ): void;
  alias(userId: string | number, previousId?: string): void;
  reset(): void;
  consent(granted: boolean): void;
  user(): { anonymousId: string; userId: string | null };
}

/** What the stub snippet queues before the tracker loads: method, arguments, time (ms). */
export type QueuedCall = [method: keyof TrackerApi, args: unknown[], at?: number];
