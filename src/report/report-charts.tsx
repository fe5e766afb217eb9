/**
 * The report's charts as inline SVG, rendered on the server. Each has a title that states its
 * numbers, so it reads without sight and without JavaScript; tables beside them carry the same.
 */
import type { FC } from 'hono/jsx';
import type { FunnelReport } from './build-report';

/** A ratio as a percentage with at most one decimal; `–` for no value. */
export const percent = (value: number | null) =>
  value === null ? '–' : `${(value * 100).toFixed(1).replace(/\.0$/, '')}%`;

/** Seconds as a short human duration. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return '–';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86_400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

const WIDTH = 720;
const LABEL = 200;

/** People per step as bars on a track of step 1's size, so the drop-off shows as the gap. */
export const FunnelChart: FC<{ report: FunnelReport }> = ({ report }) => {
  const barHeight = 34;
  const gap = 30;
  const max = Math.max(1, ...report.steps.map((s) => s.count));
  const span = WIDTH - LABEL - 90;
  return (
    <svg
      viewBox={`0 0 ${WIDTH} ${report.steps.length * (barHeight + gap)}`}
      role="img"
      aria-labelledby="funnel-title"
      class="chart"
    >
      <title id="funnel-title">
        {`People per step: ${report.steps.map((s) => `${s.name} ${s.count}`).join(', ')}`}
      </title>
      {report.steps.map((step, i) => {
        const y = i * (barHeight + gap) + 18;
        const w = Math.max(2, (span * step.count) / max);
        return (
          <g>
            <text x={0} y={y + barHeight / 2 + 5} class="bar-label">
              {step.index}. {step.name}
            </text>
            <rect x={LABEL} y={y} width={span} height={barHeight} rx={3} class="track" />
            <rect x={LABEL} y={y} width={w} height={barHeight} rx={3} class="bar" />
            <text x={LABEL + w + 8} y={y + barHeight / 2 + 5} class="bar-value">
              {step.count.toLocaleString('en-US')}
            </text>
            {i > 0 ? (
              <text x={LABEL} y={y - 6} class="bar-note">
                {`${percent(step.conversionFromPrevious)} from previous · ` +
                  `${step.dropOff.toLocaleString('en-US')} dropped`}
              </text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
};

/** Median and 90th-percentile time from the previous step, one pair of bars per step. */
export const TimeToStepChart: FC<{ report: FunnelReport }> = ({ report }) => {
  const steps = report.steps.slice(1);
  const rowHeight = 40;
  const max = Math.max(
    1,
    ...steps.map((s) => s.secondsFromPrevious.p90 ?? s.medianSecondsFromPrevious ?? 0),
  );
  const span = WIDTH - LABEL - 110;
  const scale = (seconds: number | null) => (seconds === null ? 0 : (span * seconds) / max);
  return (
    <svg
      viewBox={`0 0 ${WIDTH} ${steps.length * rowHeight + 24}`}
      role="img"
      aria-labelledby="time-title"
      class="chart"
    >
      <title id="time-title">
        {`Time from the previous step, median and 90th percentile: ${steps
          .map(
            (s) =>
              `${s.name} ${formatDuration(s.medianSecondsFromPrevious)} and ` +
              `${formatDuration(s.secondsFromPrevious.p90)}`,
          )
          .join('; ')}`}
      </title>
      <g class="legend">
        <rect x={LABEL} y={2} width={12} height={12} class="p90" />
        <text x={LABEL + 18} y={12}>
          90th percentile
        </text>
        <rect x={LABEL + 140} y={2} width={12} height={12} class="bar" />
        <text x={LABEL + 158} y={12}>
          median
        </text>
      </g>
      {steps.map((step, i) => {
        const y = 24 + i * rowHeight;
        const p90 = scale(step.secondsFromPrevious.p90);
        const median = scale(step.medianSecondsFromPrevious);
        return (
          <g>
            <text x={0} y={y + 18} class="bar-label">
              {step.index}. {step.name}
            </text>
            <rect x={LABEL} y={y + 4} width={Math.max(p90, 1)} height={22} rx={2} class="p90" />
            <rect x={LABEL} y={y + 9} width={Math.max(median, 1)} height={12} rx={2} class="bar" />
            <text x={LABEL + Math.max(p90, median) + 8} y={y + 20} class="bar-note">
              {`${formatDuration(step.medianSecondsFromPrevious)} / ` +
                `${formatDuration(step.secondsFromPrevious.p90)}`}
            </text>
          </g>
        );
      })}
    </svg>
  );
};

/**
 * Entries per day or week of entry (bars, left scale) and the share of them that completed
 * (line, right scale).
 */
export const OverTimeChart: FC<{ report: FunnelReport }> = ({ report }) => {
  const buckets = report.overTime;
  if (buckets.length === 0) return <p>No entries in this range.</p>;
  const height = 200;
  const left = 56;
  const right = 56;
  const plot = WIDTH - left - right;
  const maxEntered = Math.max(1, ...buckets.map((b) => b.entered));
  const rates = buckets.map((b) => (b.entered === 0 ? null : b.completed / b.entered));
  const maxRate = Math.max(0.0001, ...rates.map((r) => r ?? 0));
  const step = plot / buckets.length;
  const top = 10;
  const bottom = height - 30;
  const y = (share: number) => top + (bottom - top) * (1 - share);
  const x = (i: number) => left + step * (i + 0.5);
  const line = rates
    .flatMap((r, i) => (r === null ? [] : [`${x(i).toFixed(1)},${y(r / maxRate).toFixed(1)}`]))
    .join(' ');
  const every = Math.ceil(buckets.length / 10);
  return (
    <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-labelledby="series-title" class="chart">
      <title id="series-title">
        {`Per ${report.interval} of entry, people entered and the share that completed: ${buckets
          .map((b, i) => `${b.bucket} ${b.entered} entered, ${percent(rates[i] ?? null)} completed`)
          .join('; ')}`}
      </title>
      <line x1={left} x2={WIDTH - right} y1={y(0)} y2={y(0)} class="axis" />
      <text x={left - 6} y={y(1) + 4} class="axis-label" text-anchor="end">
        {maxEntered.toLocaleString('en-US')}
      </text>
      <text x={left - 6} y={y(0) + 4} class="axis-label" text-anchor="end">
        0
      </text>
      <text x={WIDTH - right + 6} y={y(1) + 4} class="axis-label rate">
        {percent(maxRate)}
      </text>
      <text x={WIDTH - right + 6} y={y(0) + 4} class="axis-label rate">
        0%
      </text>
      {buckets.map((b, i) => (
        <g>
          <rect
            x={left + step * i + step * 0.15}
            y={y(b.entered / maxEntered)}
            width={step * 0.7}
            height={y(0) - y(b.entered / maxEntered)}
            class="track"
          />
          {i % every === 0 ? (
            <text x={x(i)} y={height - 10} class="axis-label" text-anchor="middle">
              {b.bucket.slice(5)}
            </text>
          ) : null}
        </g>
      ))}
      <polyline points={line} class="line" />
      {rates.map((r, i) =>
        r === null ? null : <circle cx={x(i)} cy={y(r / maxRate)} r={3} class="dot" />,
      )}
    </svg>
  );
};
