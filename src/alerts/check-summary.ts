/**
 * What each check computed over a span of runs, pure: how often it was judged and with which
 * verdict, its smallest p-value and its closest approach to firing (largest magnitude). The
 * backtest reports this for the last day, to show how much headroom a normal day leaves.
 */
import type { Verdict } from './detectors';
import type { Evaluation } from './evaluate';

export interface CheckSummary {
  key: string;
  runs: number;
  verdicts: Record<Verdict, number>;
  minPValue: number | null;
  /** The judged run with the largest magnitude, or null when the check was never judged. */
  closest: {
    windowEnd: string;
    windowHours: number;
    observed: number;
    expected: number;
    magnitude: number;
  } | null;
}

/** Folds one run's evaluations into the summaries, keyed by alert key. */
export function addToSummaries(summaries: Map<string, CheckSummary>, runs: Evaluation[]): void {
  for (const e of runs) {
    const summary = summaries.get(e.key) ?? {
      key: e.key,
      runs: 0,
      verdicts: { firing: 0, holding: 0, clear: 0, unknown: 0 },
      minPValue: null,
      closest: null,
    };
    summary.runs += 1;
    summary.verdicts[e.verdict] += 1;
    const pValue = typeof e.detail.pValue === 'number' ? e.detail.pValue : null;
    if (pValue !== null) summary.minPValue = Math.min(summary.minPValue ?? 1, pValue);
    if (e.verdict !== 'unknown' && e.magnitude >= (summary.closest?.magnitude ?? -1)) {
      summary.closest = {
        windowEnd: new Date(e.windowEnd).toISOString(),
        windowHours: (e.windowEnd - e.windowStart) / 3_600_000,
        observed: e.observed,
        expected: e.expected,
        magnitude: e.magnitude,
      };
    }
    summaries.set(e.key, summary);
  }
}
