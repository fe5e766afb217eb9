/**
 * A bounded memo for pure functions of one string, kept per isolate: web traffic repeats a few
 * user agents over and over, and parsing one (bowser) or testing it against the bot list (isbot)
 * costs tens of microseconds (docs/BENCHMARKS.md, profile). When full, the oldest entry goes.
 */

/** The longest key kept. */
const MAX_KEY = 1000;

/** Sets key in a map kept to at most `max` entries: the key becomes the newest, the oldest go. */
export function keepNewest<K, V>(kept: Map<K, V>, key: K, value: V, max: number): void {
  kept.delete(key);
  if (kept.size >= max) kept.delete(kept.keys().next().value as K);
  kept.set(key, value);
}

/** Wraps `compute` with a memo of at most `max` keys (of at most 1,000 characters each). */
export function memoize<T>(compute: (key: string) => T, max = 1000): (key: string) => T {
  const kept = new Map<string, T>();
  return (key) => {
    if (kept.has(key)) return kept.get(key) as T;
    const value = compute(key);
    // Real agents are a few hundred characters: a longer key is answered but not kept, so the
    // memo stays under max × MAX_KEY characters whatever a client sends.
    if (key.length > MAX_KEY) return value;
    keepNewest(kept, key, value, max);
    return value;
  };
}
