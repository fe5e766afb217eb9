/**
 * A bounded memo for pure functions of one string, kept per isolate: web traffic repeats a few
 * user agents over and over, and parsing one (bowser) or testing it against the bot list (isbot)
 * costs tens of microseconds (docs/BENCHMARKS.md, profile). When full, the oldest entry goes.
 */
export function memoize<T>(compute: (key: string) => T, max = 1000): (key: string) => T {
  const kept = new Map<string, T>();
  return (key) => {
    if (kept.has(key)) return kept.get(key) as T;
    const value = compute(key);
    if (kept.size >= max) kept.delete(kept.keys().next().value as string);
    kept.set(key, value);
    return value;
  };
}
