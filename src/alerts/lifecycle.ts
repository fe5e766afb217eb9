/**
 * The alert lifecycle, pure: from an alert's stored state and this run's verdict to the one
 * action to take (open, repeat, resolve, or nothing).
 */
import type { Verdict } from './detectors';

export type Severity = 'info' | 'warning' | 'critical';
export type AlertAction = 'open' | 'repeat' | 'resolve';

export const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

/** What the store keeps about an alert key between runs. */
export interface AlertState {
  status: 'open' | 'resolved';
  /** The kind the incident opened as. */
  kind: string;
  /** The kind of its last notice (it may change mid-incident: a dip that turns into a break). */
  lastKind: string;
  /** The highest severity notified in the incident. */
  severity: Severity;
  lastNotifiedAt: number;
  /** Magnitude at the last notification (0..1), the reference for "worse". */
  lastMagnitude: number;
}

export interface Decision {
  action: AlertAction | null;
  reason: 'new' | 'worse' | 'changed' | 'reminder' | 'recovered' | null;
}

/** What a check currently says about a key. */
export interface Current {
  kind: string;
  severity: Severity;
  magnitude: number;
}

/**
 * Kinds that tell the same story: a break whose last events stop is still the same break, so
 * moving between them is no "changed" notice (a step flickering between 0 and 1 event an hour
 * would otherwise notify every hour); a dip turning into a break, or back, is.
 */
const FAMILY: Record<string, string> = { step_stopped: 'tracking_break' };
const familyOf = (kind: string) => FAMILY[kind] ?? kind;

const none: Decision = { action: null, reason: null };

/**
 * Opens on a firing verdict; while open, repeats when the kind changes (a dip that turns out to
 * be a break), when the severity rises or the magnitude grows by `worseBy` since the last notice,
 * else every `repeatHours`; resolves on a clear verdict. `holding` keeps an open alert open
 * (reminders continue) and a closed one closed; `unknown` changes nothing, so a quiet night
 * neither resolves nor reminds. One key is one incident, whatever its kind becomes.
 */
export function decide(
  previous: AlertState | null,
  verdict: Verdict,
  current: Current,
  now: number,
  config: { repeatHours: number; worseBy: number },
): Decision {
  const open = previous?.status === 'open';
  if (verdict === 'unknown') return none;
  if (!open) return verdict === 'firing' ? { action: 'open', reason: 'new' } : none;
  if (verdict === 'clear') return { action: 'resolve', reason: 'recovered' };

  if (verdict === 'firing' && familyOf(current.kind) !== familyOf(previous.lastKind)) {
    return { action: 'repeat', reason: 'changed' };
  }

  if (
    verdict === 'firing' &&
    (SEVERITY_RANK[current.severity] > SEVERITY_RANK[previous.severity] ||
      current.magnitude >= previous.lastMagnitude + config.worseBy)
  ) {
    return { action: 'repeat', reason: 'worse' };
  }
  if (now - previous.lastNotifiedAt >= config.repeatHours * 3_600_000) {
    return { action: 'repeat', reason: 'reminder' };
  }
  return none;
}

/** One action as recorded: the notice's kind, severity and extra detail, and the next state. */
export interface Recorded {
  kind: string;
  severity: Severity;
  detail: Record<string, unknown>;
  state: AlertState;
}

/**
 * What an action records. Open and repeat notices carry the current kind and severity (a repeat
 * after a change also the previous kind). The state keeps the opening kind and the highest
 * severity notified; the resolve notice names the opening kind (and the last one, when it
 * differs) and carries that highest severity, so every channel that was told gets the resolve.
 */
export function record(
  previous: AlertState | null,
  action: AlertAction,
  current: Current,
  now: number,
): Recorded {
  const was = previous?.status === 'open' ? previous : null;
  if (action === 'open' || !was) {
    return {
      kind: current.kind,
      severity: current.severity,
      detail: {},
      state: {
        status: 'open',
        kind: current.kind,
        lastKind: current.kind,
        severity: current.severity,
        lastNotifiedAt: now,
        lastMagnitude: current.magnitude,
      },
    };
  }
  if (action === 'resolve') {
    return {
      kind: was.kind,
      severity: was.severity,
      detail: was.lastKind !== was.kind ? { lastKind: was.lastKind } : {},
      state: { ...was, status: 'resolved', lastNotifiedAt: now, lastMagnitude: current.magnitude },
    };
  }
  const peak =
    SEVERITY_RANK[current.severity] > SEVERITY_RANK[was.severity] ? current.severity : was.severity;
  return {
    kind: current.kind,
    severity: current.severity,
    detail: current.kind !== was.lastKind ? { previousKind: was.lastKind } : {},
    state: {
      ...was,
      lastKind: current.kind,
      severity: peak,
      lastNotifiedAt: now,
      lastMagnitude: current.magnitude,
    },
  };
}
