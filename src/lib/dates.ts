/** Calendar checks shared by event-time parsing and report ranges. */

/**
 * True when the `YYYY-MM-DD` at the start of `text` is a real calendar date. `Date.parse` and
 * `Date.UTC` roll impossible dates over (Feb 30 becomes Mar 2), so they cannot tell.
 */
export function isRealDate(text: string): boolean {
  const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return (
    y >= 1 && date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d
  );
}
