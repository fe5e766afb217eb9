/**
 * RateLimiter: one Durable Object per site that counts the site's beacon requests per write key
 * and per client address. Counters live in memory only: an evicted object starts new windows,
 * which errs towards letting traffic through, never towards losing events.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Env } from '../env';
import {
  countRequest,
  pruneWindows,
  type RateCheck,
  type RateVerdict,
  type RateWindow,
} from './rate-limit';

export class RateLimiter extends DurableObject<Env> {
  private readonly windows = new Map<string, RateWindow>();
  private lastPrune = 0;

  /** Counts one request; the object's single thread makes check-and-count atomic. */
  async hit(checks: RateCheck[], now: number): Promise<RateVerdict> {
    if (now - this.lastPrune > 60_000 || this.windows.size > 50_000) {
      pruneWindows(this.windows, now);
      this.lastPrune = now;
    }
    return countRequest(this.windows, checks, now);
  }
}
