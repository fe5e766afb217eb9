/**
 * The report as CSV, safe to open in a spreadsheet: the same numbers as the page and the JSON,
 * one table with a `section` column (steps, summary, completion_within, over_time); breakdown
 * groups repeat the steps, summary and completion_within sections with `breakdown` and `group`
 * filled in.
 */
import type { FunnelReport } from './build-report';
import { ratio, type FunnelSummary } from './metrics';

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
  'section',
  'breakdown',
  'group',
  'group_kind',
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
  'entered',
  'completed',
  'completion_rate',
  'within',
  'eligible',
  'bucket',
] as const;

type Column = (typeof HEADER)[number];
type Row = Partial<Record<Column, string | number | null>>;

/** The steps, summary and completion-within rows of one summary (everyone, or one group). */
function summaryRows(summary: FunnelSummary, group: Row): Row[] {
  const steps = summary.steps.map(
    (s): Row => ({
      section: 'steps',
      ...group,
      step: s.index,
      name: s.name,
      event: s.event,
      count: s.count,
      conversion_from_previous: s.conversionFromPrevious,
      conversion_from_first: s.conversionFromFirst,
      drop_off: s.dropOff,
      drop_off_rate: s.dropOffRate,
      median_seconds_from_previous: s.medianSecondsFromPrevious,
      optional: s.optional ? 'yes' : 'no',
      in_progress: s.inProgress,
      p90_seconds_from_previous: s.secondsFromPrevious.p90,
      mean_seconds_from_previous: s.secondsFromPrevious.mean,
      min_seconds_from_previous: s.secondsFromPrevious.min,
      max_seconds_from_previous: s.secondsFromPrevious.max,
      value: s.value,
    }),
  );
  const total: Row = {
    section: 'summary',
    ...group,
    entered: summary.entered,
    completed: summary.completed,
    in_progress: summary.inProgress,
    completion_rate: summary.completionRate,
  };
  const within = summary.completionWithin.map(
    (w): Row => ({
      section: 'completion_within',
      ...group,
      within: w.within,
      completed: w.completed,
      eligible: w.eligible,
      completion_rate: w.rate,
    }),
  );
  return [...steps, total, ...within];
}

/** Renders the whole report as CSV with a header row (CRLF line ends). */
export function reportCsv(report: FunnelReport): string {
  const rows: Row[] = summaryRows(report, {});
  for (const group of report.breakdown?.groups ?? []) {
    const labels = { breakdown: report.breakdown?.by, group: group.value, group_kind: group.kind };
    rows.push(...summaryRows(group, labels));
  }
  for (const bucket of report.overTime) {
    rows.push({
      section: 'over_time',
      bucket: bucket.bucket,
      entered: bucket.entered,
      completed: bucket.completed,
      completion_rate: ratio(bucket.completed, bucket.entered),
    });
  }
  const lines = rows.map((row) => HEADER.map((column) => csvCell(row[column] ?? null)).join(','));
  return `${[HEADER.join(','), ...lines].join('\r\n')}\r\n`;
}
