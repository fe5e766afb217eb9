/**
 * Tail probabilities for counts: the significance tests of the detectors. Pure; summed in log
 * space so that counts in the hundreds of thousands neither overflow nor underflow.
 */

function logSumExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  const high = Math.max(a, b);
  return high + Math.log1p(Math.exp(Math.min(a, b) - high));
}

/** P(X ≤ k) for X ~ Poisson(lambda): how surprising a count this low is. */
export function poissonLowerTail(k: number, lambda: number): number {
  if (k < 0) return 0;
  if (lambda <= 0) return 1;
  let term = -lambda;
  let total = term;
  for (let i = 1; i <= Math.floor(k); i += 1) {
    term += Math.log(lambda) - Math.log(i);
    total = logSumExp(total, term);
  }
  return Math.min(1, Math.exp(total));
}

/** P(X ≤ k) for X ~ Binomial(n, p). */
export function binomialLowerTail(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n || p <= 0) return 1;
  if (p >= 1) return 0;
  const ratio = Math.log(p) - Math.log(1 - p);
  let term = n * Math.log(1 - p);
  let total = term;
  for (let i = 0; i < Math.floor(k); i += 1) {
    term += Math.log(n - i) - Math.log(i + 1) + ratio;
    total = logSumExp(total, term);
  }
  return Math.min(1, Math.exp(total));
}

/** P(X ≥ k) for X ~ Binomial(n, p): how surprising a count this high is. */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  return Math.max(0, 1 - binomialLowerTail(k - 1, n, p));
}

/** The median of a non-empty list (the mean of the middle two for an even length). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
