/** The report as CSV: one row per step, safe to open in a spreadsheet. */
import type { FunnelReport } from './build-report';

/**
 * Quotes a cell when needed and neutralises spreadsheet formulas: a cell that starts with `=`,
 * `+`, `-`, `@`, tab or carriage return gets a leading apostrophe. Numbers are written as is.
 */
export function csvCell(value: string | number | null): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

const HEADER = [
  'step',
  'name',
  'event',
  'count',
  'conversion_from_previous',
  'conversion_from_first',
  'drop_off',
  'drop_off_rate',
  'median_seconds_from_previous',
  'optional',
  'in_progress',
  'p90_seconds_from_previous',
  'mean_seconds_from_previous',
  'min_seconds_from_previous',
  'max_seconds_from_previous',
  'value',
];

/** Renders the report's steps as CSV with a header row. */
export function reportCsv(report: FunnelReport): string {
  const rows = report.steps.map((s) =>
    [
      s.index,
      s.name,
      s.event,
      s.count,
      s.conversionFromPrevious,
      s.conversionFromFirst,
      s.dropOff,
      s.dropOffRate,
      s.medianSecondsFromPrevious,
      s.optional ? 'yes' : 'no',
      s.inProgress,
      s.secondsFromPrevious.p90,
      s.secondsFromPrevious.mean,
      s.secondsFromPrevious.min,
      s.secondsFromPrevious.max,
      s.value,
    ]
      .map(csvCell)
      .join(','),
  );
  return `${[HEADER.join(','), ...rows].join('\r\n')}\r\n`;
}
