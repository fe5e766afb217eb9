/**
 * Fixed-window request counting for the beacon path. Pure: the Durable Object in
 * rate-limit-do.ts holds the windows and passes `now`.
 */

/** Limits are requests per this window. */
export const RATE_WINDOW_MS = 60_000;

export interface RateWindow {
  start: number;
  count: number;
}

export interface RateCheck {
  /** What is counted, e.g. `key:<hash>` or `addr:<address>`. */
  key: string;
  /** Requests allowed per window; 0 means unlimited. */
  limit: number;
}

export interface RateVerdict {
  allowed: boolean;
  /** Seconds until the exhausted window ends; 0 when allowed. */
  retryAfterSeconds: number;
  /** The check that refused, for the 429 message. */
  refusedBy: string | null;
}

/** Counts one request against every check; refuses when any window is already full. */
export function countRequest(
  windows: Map<string, RateWindow>,
  checks: readonly RateCheck[],
  now: number,
): RateVerdict {
  const active = checks.filter((check) => check.limit > 0);
  const current = active.map((check) => {
    const existing = windows.get(check.key);
    const window =
      existing && now - existing.start < RATE_WINDOW_MS ? existing : { start: now, count: 0 };
    return { check, window };
  });
  const full = current.find(({ check, window }) => window.count >= check.limit);
  if (full) {
    const remaining = full.window.start + RATE_WINDOW_MS - now;
    return {
      allowed: false,
      retryAfterSeconds: Math.max(1, Math.ceil(remaining / 1000)),
      refusedBy: full.check.key.split(':')[0] ?? full.check.key,
    };
  }
  for (const { check, window } of current) {
    window.count += 1;
    windows.set(check.key, window);
  }
  return { allowed: true, retryAfterSeconds: 0, refusedBy: null };
}

/** Drops windows that have ended, so that one object's memory stays bounded. */
export function pruneWindows(windows: Map<string, RateWindow>, now: number): void {
  for (const [key, window] of windows) {
    if (now - window.start >= RATE_WINDOW_MS) windows.delete(key);
  }
}
