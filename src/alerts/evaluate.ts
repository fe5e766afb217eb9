/**
 * One site's step-health check for one judged bucket, pure: from hourly series and the goals'
 * steps to one evaluation per alert key. A step shared by several goals is judged once.
 */
import {
  chooseWindow,
  countAt,
  expectedAt,
  expectedWindow,
  HOUR_MS,
  sumWindow,
  WINDOW_HOURS,
  type HourlySeries,
} from './baseline';
import type { AlertConfig } from './config';
import {
  classifyDrop,
  judgeConversion,
  judgeFieldPresence,
  judgeFieldType,
  judgeRejectedShare,
  judgeRule,
  judgeVolume,
  suggestRenames,
  type FieldCounts,
  type Judgement,
  type Verdict,
} from './detectors';
import type { Severity } from './lifecycle';
import { judgeSiteTotal, judgeSiteTraffic, SITE_TRAFFIC_KEY, type DipStep } from './site-traffic';
import { inMaintenance } from './windows';

export type AlertKind =
  | 'step_stopped'
  | 'tracking_break'
  | 'traffic_dip'
  | 'site_silent'
  | 'rule'
  | 'conversion_drop'
  | 'property_missing'
  | 'property_type_changed'
  | 'rejected_share';

/** A goal as the detectors see it: its id and the event of each step, in order. */
export interface GoalSteps {
  goalId: string;
  steps: Array<{ event: string; filterProperties: string[] }>;
}

export interface SiteSeries {
  /** Hourly counts per event name, zero-filled on read. */
  volumes: ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** First hour the site has data for: hours before it are not history. */
  historyStart: number | null;
  /** Hourly accepted and rejected events (by event time where readable) for the reject share. */
  accepted: HourlySeries;
  rejected: HourlySeries;
  /** Hourly property counts per `event` + `\n` + `field`. */
  fields: ReadonlyMap<string, ReadonlyMap<number, FieldCounts>>;
}

export interface Evaluation {
  key: string;
  kind: AlertKind;
  severity: Severity;
  verdict: Verdict;
  step: string | null;
  goals: string[];
  observed: number;
  expected: number;
  magnitude: number;
  windowStart: number;
  windowEnd: number;
  detail: Record<string, unknown>;
}

const DAY_HOURS = 24;

function sumSeries(series: SiteSeries['volumes']): Map<number, number> {
  const total = new Map<number, number>();
  for (const hours of series.values()) {
    for (const [hour, count] of hours) total.set(hour, (total.get(hour) ?? 0) + count);
  }
  return total;
}

/**
 * The site's total less one event's counts, computed per hour as it is read: summing every
 * other event again for each step cost O(steps² × hours), 9 of the 11 s of a run at 500 steps.
 * Counts are integers, so the difference is exactly the sum of the other events.
 */
function without(total: HourlySeries, series: HourlySeries | undefined): HourlySeries {
  return { get: (hour) => countAt(total, hour) - countAt(series, hour) };
}

function ratioOver(
  series: HourlySeries | undefined,
  end: number,
  hours: number,
  historyStart: number,
  config: AlertConfig,
): number | null {
  const window = expectedWindow(series, end, hours, historyStart, config);
  if (!window || window.expected <= 0) return null;
  return sumWindow(series, end, hours) / window.expected;
}

function addFieldCounts(total: FieldCounts, counts: FieldCounts | undefined): void {
  if (!counts) return;
  total.n += counts.n;
  total.present += counts.present;
  for (const [type, n] of Object.entries(counts.types)) {
    total.types[type] = (total.types[type] ?? 0) + n;
  }
}

function fieldWindow(
  hours: ReadonlyMap<number, FieldCounts> | undefined,
  from: number,
  to: number,
): FieldCounts {
  const total: FieldCounts = { n: 0, present: 0, types: {} };
  for (let h = from; h < to; h += HOUR_MS) addFieldCounts(total, hours?.get(h));
  return total;
}

/** Evaluates every check of a site for the bucket ending at `end`. */
export function evaluateSite(input: {
  end: number;
  series: SiteSeries;
  goals: GoalSteps[];
  config: AlertConfig;
  /**
   * Goals' own resolved configs: they apply to the checks that concern that goal alone. A step
   * or pair shared by goals is judged once, with the site's config.
   */
  goalConfigs?: ReadonlyMap<string, AlertConfig>;
  /**
   * Until when each alert key was open (Infinity while open, the resolve time after): a
   * conversion window that overlaps a step's volume alert is covered by that alert.
   */
  activeUntil: ReadonlyMap<string, number>;
}): Evaluation[] {
  const { end, series, goals, config } = input;
  const configFor = (goalIds: string[]): AlertConfig =>
    (goalIds.length === 1 ? input.goalConfigs?.get(goalIds[0] as string) : undefined) ?? config;
  const out: Evaluation[] = [];
  if (series.historyStart === null) return out;
  const historyStart = series.historyStart;

  const goalsOf = new Map<string, string[]>();
  const previousOf = new Map<string, Set<string | null>>();
  const filterFields = new Map<string, Set<string>>();
  for (const goal of goals) {
    goal.steps.forEach((step, index) => {
      goalsOf.set(step.event, [...(goalsOf.get(step.event) ?? []), goal.goalId]);
      const previous = index > 0 ? (goal.steps[index - 1]?.event ?? null) : null;
      previousOf.set(step.event, (previousOf.get(step.event) ?? new Set()).add(previous));
      const fields = filterFields.get(step.event) ?? new Set(config.watchFields);
      for (const property of step.filterProperties) fields.add(`properties.${property}`);
      filterFields.set(step.event, fields);
    });
  }

  const judged = (
    base: Omit<Evaluation, 'verdict' | 'observed' | 'expected' | 'magnitude'>,
    j: Judgement,
  ): Evaluation => {
    const maintenance = inMaintenance(config, base.windowStart, base.windowEnd);
    return {
      ...base,
      verdict: maintenance ? 'unknown' : j.verdict,
      observed: j.observed,
      expected: j.expected,
      magnitude: j.magnitude,
      detail: { ...base.detail, pValue: j.pValue, ...(maintenance ? { maintenance: true } : {}) },
    };
  };

  // The whole site first: when it is silent, every step's stop is part of that one incident.
  const total = sumSeries(series.volumes);
  const siteTotal = judgeSiteTotal(total, end, historyStart, config);
  const dipSteps: DipStep[] = [];
  const allSteps: DipStep[] = [];

  // An event's first hour with events in the series, for rename candidates: found once per
  // event, not again for every firing step (at 500 events, 0.03 s a step).
  const firstSeen = new Map<string, number>();
  const firstSeenOf = (event: string, hours: ReadonlyMap<number, number>): number => {
    let first = firstSeen.get(event);
    if (first === undefined) {
      first = Infinity;
      for (const [hour, n] of hours) if (n > 0 && hour < first) first = hour;
      firstSeen.set(event, first);
    }
    return first;
  };

  // Volume per step, with its cause and, for a stop, the names that may have replaced it. A
  // step that fell with the rest of the site is listed in the site-level incident instead.
  const volumeFiring = new Set<string>();
  for (const [event, goalIds] of goalsOf) {
    const c = configFor(goalIds);
    const stepSeries = series.volumes.get(event);
    const window = chooseWindow(stepSeries, end, historyStart, c);
    const key = `volume:${event}`;
    if (window.status !== 'ok') {
      allSteps.push({
        step: event,
        goals: goalIds,
        verdict: 'unknown',
        observed: 0,
        expected: 0,
        windowHours: 0,
      });
      out.push({
        key,
        kind: 'tracking_break',
        severity: 'critical',
        verdict: 'unknown',
        step: event,
        goals: goalIds,
        observed: window.status === 'too_quiet' ? sumWindow(stepSeries, end, window.hours) : 0,
        expected: window.status === 'too_quiet' ? window.expected : 0,
        magnitude: 0,
        windowStart: end - (window.status === 'too_quiet' ? window.hours : 1) * HOUR_MS,
        windowEnd: end,
        detail: { status: window.status },
      });
      continue;
    }
    const judgement = judgeVolume(window.observed, window.expected, c);
    const windowStart = end - window.hours * HOUR_MS;
    const rest = without(total, stepSeries);
    const restRatio = ratioOver(rest, end, window.hours, historyStart, c);
    const previousRatios = [...(previousOf.get(event) ?? [])].map((previous) =>
      previous === null
        ? null
        : ratioOver(series.volumes.get(previous), end, window.hours, historyStart, c),
    );
    // The step is first in some goal, or one of its previous steps holds: not upstream.
    const previousRatio = previousRatios.some((r) => r === null)
      ? null
      : Math.max(...previousRatios.map((r) => r ?? 0));
    const cause = classifyDrop(restRatio, previousRatio, c.holdRatio);
    const step: DipStep = {
      step: event,
      goals: goalIds,
      verdict: judgement.verdict,
      observed: window.observed,
      expected: window.expected,
      windowHours: window.hours,
    };
    allSteps.push(step);
    const inDip = cause === 'traffic_dip' && judgement.verdict !== 'clear';
    const siteWide = siteTotal.silent || inDip;
    if (inDip) dipSteps.push(step);
    const kind: AlertKind = window.observed === 0 ? 'step_stopped' : 'tracking_break';
    const severity: Severity = 'critical';
    let verdict = judgement.verdict;
    // Upstream: the earlier step's alert covers it; site-wide: the site-level incident does.
    if (verdict === 'firing' && (cause === 'upstream' || siteWide)) verdict = 'holding';
    if (siteWide && judgement.verdict === 'firing') volumeFiring.add(event);
    const detail: Record<string, unknown> = {
      windowHours: window.hours,
      basis: window.basis,
      restOfSiteRatio: restRatio,
      previousStepRatio: previousRatio,
      // A cause explains a drop: a step that is clear (or not judged) has none.
      cause:
        judgement.verdict === 'clear' || judgement.verdict === 'unknown'
          ? null
          : siteTotal.silent
            ? 'site_silent'
            : cause,
      ...(siteWide ? { siteEvent: SITE_TRAFFIC_KEY } : {}),
    };
    if (verdict === 'firing') {
      volumeFiring.add(event);
      const candidates = [...series.volumes]
        .map(([name, hours]) => ({
          event: name,
          observed: sumWindow(hours, end, window.hours),
          firstSeen: firstSeenOf(name, hours),
        }))
        .filter((candidate) => candidate.firstSeen >= windowStart - DAY_HOURS * HOUR_MS)
        .filter((candidate) => candidate.firstSeen - historyStart >= DAY_HOURS * HOUR_MS);
      detail.renameSuggestions = suggestRenames(event, window.expected, candidates).slice(0, 3);
    }
    out.push({
      ...judged(
        { key, kind, severity, step: event, goals: goalIds, windowStart, windowEnd: end, detail },
        judgement,
      ),
      verdict: inMaintenance(config, windowStart, end) ? 'unknown' : verdict,
    });
  }

  // One site-level incident for a dip or a silence, listing the steps it concerns.
  const site = judgeSiteTraffic(siteTotal, dipSteps, allSteps, end, config);
  out.push(
    judged(
      {
        key: SITE_TRAFFIC_KEY,
        kind: site.kind,
        severity: site.severity,
        step: null,
        goals: site.goals,
        windowStart: site.windowStart,
        windowEnd: end,
        detail: { windowHours: siteTotal.windowHours, steps: site.steps },
      },
      { ...site, pValue: siteTotal.judgement?.pValue ?? null },
    ),
  );
  const siteEvent = site.verdict === 'firing' || site.verdict === 'holding' ? site : null;

  // The site's own absolute and relative rules, on the judged hour. Hours before the site's
  // first event are not history: no rule is judged there. During a site-wide dip or silence a
  // rule's notice says so and pages no higher than the site-level incident.
  for (const rule of config.rules) {
    const ruleSeries = series.volumes.get(rule.event);
    const hour = end - HOUR_MS;
    const expected = expectedAt(ruleSeries, hour, historyStart, config)?.expected ?? null;
    const judgement: Judgement =
      hour < historyStart
        ? { verdict: 'unknown', observed: 0, expected: 0, magnitude: 0, pValue: null }
        : judgeRule(rule, countAt(ruleSeries, hour), expected);
    const severity: Severity = siteEvent && siteEvent.severity === 'info' ? 'info' : 'warning';
    out.push(
      judged(
        {
          key: `rule:${rule.id}`,
          kind: 'rule',
          severity,
          step: rule.event,
          goals: goalsOf.get(rule.event) ?? [],
          windowStart: hour,
          windowEnd: end,
          detail: {
            rule,
            ...(siteEvent ? { siteEvent: { key: SITE_TRAFFIC_KEY, kind: siteEvent.kind } } : {}),
          },
        },
        judgement,
      ),
    );
  }

  // Step conversion for each consecutive pair, judged once however many goals share it.
  const pairs = new Map<string, { previous: string; event: string; goals: string[] }>();
  for (const goal of goals) {
    for (let i = 1; i < goal.steps.length; i += 1) {
      const previous = goal.steps[i - 1]?.event as string;
      const event = goal.steps[i]?.event as string;
      if (previous === event) continue;
      const key = `conversion:${previous}>${event}`;
      const pair = pairs.get(key) ?? { previous, event, goals: [] };
      pair.goals.push(goal.goalId);
      pairs.set(key, pair);
    }
  }
  for (const [key, pair] of pairs) {
    const c = configFor(pair.goals);
    const previousSeries = series.volumes.get(pair.previous);
    const stepSeries = series.volumes.get(pair.event);
    const window = chooseWindow(previousSeries, end, historyStart, c, c.conversionMinSample);
    if (window.status !== 'ok') continue;
    const stepExpected = expectedWindow(stepSeries, end, window.hours, historyStart, c);
    if (!stepExpected) continue;
    const judgement = judgeConversion(
      { observed: window.observed, expected: window.expected },
      { observed: sumWindow(stepSeries, end, window.hours), expected: stepExpected.expected },
      c,
    );
    const conversionStart = end - window.hours * HOUR_MS;
    const covered = [pair.previous, pair.event].some(
      (event) =>
        volumeFiring.has(event) ||
        (input.activeUntil.get(`volume:${event}`) ?? -Infinity) > conversionStart,
    );
    const evaluation = judged(
      {
        key,
        kind: 'conversion_drop',
        severity: 'warning',
        step: pair.event,
        goals: pair.goals,
        windowStart: end - window.hours * HOUR_MS,
        windowEnd: end,
        detail: {
          previousStep: pair.previous,
          windowHours: window.hours,
          coveredByVolumeAlert: covered,
        },
      },
      judgement,
    );
    if (covered && evaluation.verdict === 'firing') evaluation.verdict = 'holding';
    out.push(evaluation);
  }

  // Properties the steps depend on: gone from most events, or changed type.
  for (const [event, fields] of filterFields) {
    const c = configFor(goalsOf.get(event) ?? []);
    for (const field of fields) {
      const hours = series.fields.get(`${event}\n${field}`);
      let current = fieldWindow(hours, end - HOUR_MS, end);
      let windowHours = 1;
      for (const candidate of WINDOW_HOURS) {
        if (candidate > c.maxWindowHours) break;
        windowHours = candidate;
        current = fieldWindow(hours, end - candidate * HOUR_MS, end);
        if (current.n >= c.fieldMinSample) break;
      }
      const windowStart = end - windowHours * HOUR_MS;
      const baseline = fieldWindow(hours, windowStart - DAY_HOURS * HOUR_MS, windowStart);
      const base = {
        step: event,
        goals: goalsOf.get(event) ?? [],
        severity: 'warning' as const,
        windowStart,
        windowEnd: end,
      };
      const presence = judgeFieldPresence(baseline, current, c);
      out.push(
        judged(
          {
            ...base,
            key: `field:${event}:${field}:missing`,
            kind: 'property_missing',
            detail: { field, windowHours },
          },
          presence,
        ),
      );
      const type = judgeFieldType(baseline, current, c);
      out.push(
        judged(
          {
            ...base,
            key: `field:${event}:${field}:type`,
            kind: 'property_type_changed',
            detail: { field, windowHours, baseType: type.baseType, newType: type.newType },
          },
          type,
        ),
      );
    }
  }

  // The share of rejected events, site-wide.
  let hoursBack = 1;
  for (const candidate of WINDOW_HOURS) {
    if (candidate > config.maxWindowHours) break;
    hoursBack = candidate;
    const total =
      sumWindow(series.accepted, end, candidate) + sumWindow(series.rejected, end, candidate);
    if (total >= config.rejectedMinSample) break;
  }
  const windowStart = end - hoursBack * HOUR_MS;
  const current = {
    rejected: sumWindow(series.rejected, end, hoursBack),
    total: sumWindow(series.accepted, end, hoursBack) + sumWindow(series.rejected, end, hoursBack),
  };
  const baseRejected = sumWindow(series.rejected, windowStart, DAY_HOURS);
  const baseline = {
    rejected: baseRejected,
    total: sumWindow(series.accepted, windowStart, DAY_HOURS) + baseRejected,
  };
  out.push(
    judged(
      {
        key: 'rejected',
        kind: 'rejected_share',
        severity: 'warning',
        step: null,
        goals: [],
        windowStart,
        windowEnd: end,
        detail: { windowHours: hoursBack, current, baseline },
      },
      judgeRejectedShare(baseline, current, config),
    ),
  );
  return out;
}
