/**
 * Site-wide traffic, pure: a traffic dip is one site-level incident listing the steps that fell,
 * not one per step, and a site that receives nothing at all where its baseline expects volume is
 * a critical `site_silent` incident (the tracking tag removed). Both share one alert key, so a
 * dip that deepens into silence is one incident whose kind changes.
 */
import { chooseWindow, HOUR_MS, type HourlySeries } from './baseline';
import type { AlertConfig } from './config';
import { judgeVolume, type Judgement, type Verdict } from './detectors';
import type { Severity } from './lifecycle';

/** The one alert key of site-wide traffic (dips and silence). */
export const SITE_TRAFFIC_KEY = 'site:traffic';

/** A watched step whose volume drop was classified as part of a site-wide dip. */
export interface DipStep {
  step: string;
  goals: string[];
  verdict: Verdict;
  observed: number;
  expected: number;
  windowHours: number;
}

/** The whole site's (all named events') volume over the shortest judgeable window. */
export interface SiteTotal {
  judgement: Judgement | null;
  windowHours: number;
  /** Nothing at all was received where the baseline expects volume (significantly). */
  silent: boolean;
}

/** Judges the site's total volume ending at `end`; `silent` only on zero events that count. */
export function judgeSiteTotal(
  total: HourlySeries,
  end: number,
  historyStart: number,
  config: AlertConfig,
): SiteTotal {
  const window = chooseWindow(total, end, historyStart, config);
  if (window.status !== 'ok') return { judgement: null, windowHours: 1, silent: false };
  const judgement = judgeVolume(window.observed, window.expected, config);
  const silent = window.observed === 0 && judgement.verdict === 'firing';
  return { judgement, windowHours: window.hours, silent };
}

/** The site-level verdict, before maintenance windows are applied. */
export interface SiteTrafficVerdict {
  kind: 'site_silent' | 'traffic_dip';
  severity: Severity;
  verdict: Verdict;
  observed: number;
  expected: number;
  magnitude: number;
  windowStart: number;
  steps: DipStep[];
  goals: string[];
}

/**
 * Silence fires `critical` whatever `trafficDip` says (it is a tracking break, not a dip). A dip
 * fires when a watched step's drop fired and was classified as a dip, at the `trafficDip`
 * severity (`off`: it holds, so it never opens); it holds while such a step is between trigger
 * and recovery, and clears when no step is in a dip. Unknown when nothing could be judged.
 */
export function judgeSiteTraffic(
  total: SiteTotal,
  dipSteps: DipStep[],
  allSteps: DipStep[],
  end: number,
  config: AlertConfig,
): SiteTrafficVerdict {
  const observed = total.judgement?.observed ?? 0;
  const expected = total.judgement?.expected ?? 0;
  const base = {
    observed,
    expected,
    magnitude: total.judgement?.magnitude ?? 0,
    windowStart: end - total.windowHours * HOUR_MS,
  };
  const goalsOf = (steps: DipStep[]) => [...new Set(steps.flatMap((s) => s.goals))];

  if (total.silent) {
    return {
      ...base,
      kind: 'site_silent',
      severity: 'critical',
      verdict: 'firing',
      steps: allSteps,
      goals: goalsOf(allSteps),
    };
  }
  const severity: Severity = config.trafficDip === 'warning' ? 'warning' : 'info';
  const firing = dipSteps.some((s) => s.verdict === 'firing');
  const holding = dipSteps.some((s) => s.verdict === 'holding');
  let verdict: Verdict = 'clear';
  if (firing) verdict = config.trafficDip === 'off' ? 'holding' : 'firing';
  else if (holding) verdict = 'holding';
  else if (!total.judgement && allSteps.every((s) => s.verdict === 'unknown')) verdict = 'unknown';
  return {
    ...base,
    kind: 'traffic_dip',
    severity,
    verdict,
    steps: dipSteps,
    goals: goalsOf(dipSteps),
  };
}
