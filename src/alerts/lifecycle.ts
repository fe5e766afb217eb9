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
  severity: Severity;
  lastNotifiedAt: number;
  /** Magnitude at the last notification (0..1), the reference for "worse". */
  lastMagnitude: number;
}

export interface Decision {
  action: AlertAction | null;
  reason: 'new' | 'worse' | 'reminder' | 'recovered' | null;
}

const none: Decision = { action: null, reason: null };

/**
 * Opens on a firing verdict; while open, repeats when the severity rises or the magnitude grows
 * by `worseBy` since the last notice, else every `repeatHours`; resolves on a clear verdict.
 * `holding` keeps an open alert open (reminders continue) and a closed one closed; `unknown`
 * changes nothing, so a quiet night neither resolves nor reminds.
 */
export function decide(
  previous: AlertState | null,
  verdict: Verdict,
  current: { severity: Severity; magnitude: number },
  now: number,
  config: { repeatHours: number; worseBy: number },
): Decision {
  const open = previous?.status === 'open';
  if (verdict === 'unknown') return none;
  if (!open) return verdict === 'firing' ? { action: 'open', reason: 'new' } : none;
  if (verdict === 'clear') return { action: 'resolve', reason: 'recovered' };

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
