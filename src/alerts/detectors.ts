/**
 * The pure detectors. Each one judges one series for one window and answers a verdict:
 * `firing` (past the trigger level and significant), `holding` (between trigger and recovery
 * levels: an open alert stays open, a closed one stays closed), `clear`, or `unknown` (too
 * little volume or history to say). Thresholds are documented in docs/ALERTS.md.
 */
import { ruleLevels, type AlertConfig, type AlertRule } from './config';
import { binomialLowerTail, binomialUpperTail, poissonLowerTail } from './stats';

export type Verdict = 'firing' | 'holding' | 'clear' | 'unknown';

export interface Judgement {
  verdict: Verdict;
  observed: number;
  expected: number;
  /** How bad it is, 0..1 (for drops, 1 − observed/expected); compared to decide "worse". */
  magnitude: number;
  pValue: number | null;
}

const unknown = (observed: number, expected: number): Judgement => ({
  verdict: 'unknown',
  observed,
  expected,
  magnitude: 0,
  pValue: null,
});

/** Trigger, recovery and hold between them: the hysteresis that stops a value from flapping. */
function withHysteresis(fires: boolean, recovers: boolean): Verdict {
  if (fires) return 'firing';
  return recovers ? 'clear' : 'holding';
}

/**
 * A step's volume against its baseline: fires when observed ≤ `dropRatio` × expected and the
 * Poisson lower tail is below `alpha`; clears at observed ≥ `recoverRatio` × expected.
 */
export function judgeVolume(
  observed: number,
  expected: number,
  config: Pick<AlertConfig, 'alpha' | 'dropRatio' | 'recoverRatio' | 'minExpected'>,
): Judgement {
  if (expected < config.minExpected) return unknown(observed, expected);
  const ratio = observed / expected;
  const pValue = poissonLowerTail(observed, expected);
  const fires = ratio <= config.dropRatio && pValue < config.alpha;
  return {
    verdict: withHysteresis(fires, ratio >= config.recoverRatio),
    observed,
    expected,
    magnitude: Math.max(0, 1 - ratio),
    pValue,
  };
}

export type DropKind = 'tracking_break' | 'traffic_dip' | 'upstream';

/**
 * Why a step's volume dropped. The rest of the site's events (this step's own events left out,
 * so a dominant step cannot drag its own context down) and the step before it are compared with
 * their baselines over the same window: both holding at `holdRatio` means only this step broke
 * (a tracking break); the rest of the site falling too is a traffic dip; the site holding while
 * the previous step fell means the break is upstream, and the earlier step's alert covers it.
 */
export function classifyDrop(
  restOfSiteRatio: number | null,
  previousStepRatio: number | null,
  holdRatio: number,
): DropKind {
  const previousFell = previousStepRatio !== null && previousStepRatio < holdRatio;
  // A previous step that fell much harder than the rest of the site is broken itself: its own
  // alert covers this step (one incident). It also drags the rest of the site down when it is a
  // large share of it, which must not turn this step into a second, "traffic dip" incident.
  if (
    previousFell &&
    (restOfSiteRatio === null || previousStepRatio < restOfSiteRatio * holdRatio)
  ) {
    return 'upstream';
  }
  if (restOfSiteRatio !== null && restOfSiteRatio < holdRatio) return 'traffic_dip';
  if (previousFell) return 'upstream';
  return 'tracking_break';
}

/**
 * A site's own rule. Absolute: fires below `below`, clears at `recoverAt` (default `below` ×
 * 1.2). Relative: fires at a drop of `dropPct` % under the baseline, clears at `recoverPct` %
 * (default half). An absolute rule is not judged in an hour whose baseline is under its line
 * anyway (a quiet night); a relative rule not without a baseline.
 */
export function judgeRule(rule: AlertRule, observed: number, expected: number | null): Judgement {
  const levels = ruleLevels(rule);
  if (levels.kind === 'absolute') {
    // Only an hour whose usual volume is under the line itself is skipped (a quiet night): a
    // step that usually runs between the line and the recovery level is still judged (C29 B).
    if (expected !== null && expected < levels.below) return unknown(observed, expected);
    return {
      verdict: withHysteresis(observed < levels.below, observed >= levels.recoverAt),
      observed,
      expected: expected ?? levels.below,
      magnitude: Math.max(0, 1 - observed / levels.below),
      pValue: null,
    };
  }
  if (expected === null || expected <= 0) return unknown(observed, expected ?? 0);
  const drop = Math.max(0, 1 - observed / expected);
  return {
    verdict: withHysteresis(drop * 100 >= levels.dropPct, drop * 100 <= levels.recoverPct),
    observed,
    expected,
    magnitude: drop,
    pValue: null,
  };
}

/**
 * Step conversion (events at step k over events at step k−1) against the baseline ratio, with a
 * binomial lower-tail test. Needs `conversionMinSample` events at step k−1 and
 * `conversionMinExpected` expected at step k; fires at ≤ `dropRatio` of the usual rate.
 */
export function judgeConversion(
  previous: { observed: number; expected: number },
  step: { observed: number; expected: number },
  config: AlertConfig,
): Judgement {
  const n = previous.observed;
  if (previous.expected <= 0) return unknown(0, 0);
  const baseRate = Math.min(step.expected / previous.expected, 0.999);
  if (n < config.conversionMinSample || n * baseRate < config.conversionMinExpected) {
    return unknown(n > 0 ? step.observed / n : 0, baseRate);
  }
  const x = Math.min(step.observed, n);
  const rate = x / n;
  const ratio = rate / baseRate;
  const pValue = binomialLowerTail(x, n, baseRate);
  const fires = ratio <= config.dropRatio && pValue < config.alpha;
  return {
    verdict: withHysteresis(fires, ratio >= config.recoverRatio),
    observed: rate,
    expected: baseRate,
    magnitude: Math.max(0, 1 - ratio),
    pValue,
  };
}

/** Counts of one property on one step's events in a window (`types` by SQLite json_type). */
export interface FieldCounts {
  n: number;
  present: number;
  types: Record<string, number>;
}

/** JSON types folded the way a filter sees them: integer and real are both numbers. */
export function foldTypes(types: Record<string, number>): Record<string, number> {
  const folded: Record<string, number> = {};
  for (const [type, count] of Object.entries(types)) {
    const name =
      type === 'integer' || type === 'real'
        ? 'number'
        : type === 'true' || type === 'false'
          ? 'boolean'
          : type;
    folded[name] = (folded[name] ?? 0) + count;
  }
  return folded;
}

/**
 * A property that a step's events usually carry (share ≥ `fieldMinShare` in the baseline) and
 * now mostly lack: fires when the current share is ≤ `dropRatio` of the baseline share and the
 * binomial lower tail is below `alpha`; clears at ≥ `recoverRatio` of it.
 */
export function judgeFieldPresence(
  baseline: FieldCounts,
  current: FieldCounts,
  config: AlertConfig,
): Judgement {
  const baseShare = baseline.n > 0 ? baseline.present / baseline.n : 0;
  const share = current.n > 0 ? current.present / current.n : 0;
  if (
    baseline.n < config.fieldMinSample ||
    current.n < config.fieldMinSample ||
    baseShare < config.fieldMinShare
  ) {
    return unknown(share, baseShare);
  }
  const ratio = share / baseShare;
  const pValue = binomialLowerTail(current.present, current.n, baseShare);
  return {
    verdict: withHysteresis(
      ratio <= config.dropRatio && pValue < config.alpha,
      ratio >= config.recoverRatio,
    ),
    observed: share,
    expected: baseShare,
    magnitude: Math.max(0, 1 - ratio),
    pValue,
  };
}

/**
 * A property whose type changed (number to string): its baseline type covers ≥ 90 % of the
 * values present; fires when that type's share of the current values is ≤ 50 % (significant),
 * clears at ≥ 80 %. Judged on `fieldMinSample` present values at least.
 */
export function judgeFieldType(
  baseline: FieldCounts,
  current: FieldCounts,
  config: AlertConfig,
): Judgement & { baseType: string | null; newType: string | null } {
  const base = foldTypes(baseline.types);
  const now = foldTypes(current.types);
  const present = (types: Record<string, number>) =>
    Object.entries(types)
      .filter(([type]) => type !== 'null')
      .reduce((sum, [, n]) => sum + n, 0);
  const basePresent = present(base);
  const nowPresent = present(now);
  const top = (types: Record<string, number>) =>
    Object.entries(types)
      .filter(([type]) => type !== 'null')
      .sort((a, b) => b[1] - a[1])[0];
  const baseTop = top(base);
  const nowTop = top(now);
  const baseType = baseTop?.[0] ?? null;
  const newType = nowTop?.[0] ?? null;
  if (
    !baseTop ||
    basePresent < config.fieldMinSample ||
    nowPresent < config.fieldMinSample ||
    baseTop[1] / basePresent < 0.9
  ) {
    return { ...unknown(0, 0), baseType, newType };
  }
  const kept = now[baseTop[0]] ?? 0;
  const share = kept / nowPresent;
  const pValue = binomialLowerTail(kept, nowPresent, baseTop[1] / basePresent);
  return {
    verdict: withHysteresis(share <= 0.5 && pValue < config.alpha, share >= 0.8),
    observed: share,
    expected: baseTop[1] / basePresent,
    magnitude: 1 - share,
    pValue,
    baseType,
    newType,
  };
}

/**
 * The share of rejected events rising: fires when the current share is at least
 * `rejectedMinShare` and `rejectedFactor` × the baseline share, with a significant binomial
 * upper tail, over at least `rejectedMinSample` events; clears below half of that level.
 */
export function judgeRejectedShare(
  baseline: { rejected: number; total: number },
  current: { rejected: number; total: number },
  config: AlertConfig,
): Judgement {
  const baseShare = baseline.total > 0 ? baseline.rejected / baseline.total : 0;
  const share = current.total > 0 ? current.rejected / current.total : 0;
  if (current.total < config.rejectedMinSample || baseline.total < config.rejectedMinSample) {
    return unknown(share, baseShare);
  }
  const level = Math.max(config.rejectedMinShare, config.rejectedFactor * baseShare);
  const pValue = binomialUpperTail(current.rejected, current.total, Math.max(baseShare, 1e-4));
  return {
    verdict: withHysteresis(share >= level && pValue < config.alpha, share < level / 2),
    observed: share,
    expected: baseShare,
    magnitude: Math.min(1, share),
    pValue,
  };
}

/** Lower case, letters and digits only: `Signup Completed` and `signup_completed` match. */
export function normalizeEventName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

export interface RenameCandidate {
  event: string;
  observed: number;
  firstSeen: number;
  sameNormalizedName: boolean;
}

/**
 * Names that may have replaced a step's event: first seen recently (never in the history before)
 * and either the same normalised name or a volume within ½..2× of the step's expected volume.
 * Same-name candidates come first, then the closest volume.
 */
export function suggestRenames(
  stepEvent: string,
  expected: number,
  candidates: Array<{ event: string; observed: number; firstSeen: number }>,
): RenameCandidate[] {
  const target = normalizeEventName(stepEvent);
  return candidates
    .filter((c) => c.event !== stepEvent && c.observed > 0)
    .map((c) => ({ ...c, sameNormalizedName: normalizeEventName(c.event) === target }))
    .filter(
      (c) => c.sameNormalizedName || (c.observed >= expected / 2 && c.observed <= expected * 2),
    )
    .sort(
      (a, b) =>
        Number(b.sameNormalizedName) - Number(a.sameNormalizedName) ||
        Math.abs(a.observed - expected) - Math.abs(b.observed - expected),
    );
}
