/**
 * The report as a server-rendered page: readable without JavaScript, charts as inline SVG, every
 * view a plain GET link. Hono's JSX escapes every interpolated value.
 */
import { raw } from 'hono/html';
import type { FC } from 'hono/jsx';
import type { FunnelReport } from './build-report';

const percent = (value: number | null) =>
  value === null ? '–' : `${(value * 100).toFixed(1).replace(/\.0$/, '')}%`;

/** Seconds as a short human duration. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return '–';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86_400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

const FunnelChart: FC<{ report: FunnelReport }> = ({ report }) => {
  const width = 720;
  const barHeight = 34;
  const gap = 30;
  const label = 200;
  const max = Math.max(1, ...report.steps.map((s) => s.count));
  const height = report.steps.length * (barHeight + gap);
  return (
    <svg
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-labelledby="funnel-title"
      class="chart"
    >
      <title id="funnel-title">
        People per step:{' '}
        {report.steps.map((s) => `${s.name} ${s.count}`).join(', ')}
      </title>
      {report.steps.map((step, i) => {
        const y = i * (barHeight + gap);
        const w = Math.max(2, ((width - label - 90) * step.count) / max);
        return (
          <g>
            <text x={0} y={y + barHeight / 2 + 5} class="bar-label">
              {step.index}. {step.name}
            </text>
            <rect x={label} y={y} width={w} height={barHeight} rx={3} class="bar" />
            <text x={label + w + 8} y={y + barHeight / 2 + 5} class="bar-value">
              {step.count.toLocaleString('en-US')}
            </text>
            {i > 0 ? (
              <text x={label} y={y - 8} class="bar-note">
                {percent(step.conversionFromPrevious)} from previous · {step.dropOff} dropped
              </text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
};

const STYLE = `
:root { color-scheme: light; --ink: #1b1f24; --muted: #57606a; --bar: #2f6feb; --line: #d0d7de; }
* { box-sizing: border-box; }
.notice { border-left: 4px solid #bf8700; padding: .5rem .75rem; background: #fff8c5; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
  margin: 0 auto; max-width: 960px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.sub { color: var(--muted); margin: 0 0 16px; }
form { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; padding: 12px;
  border: 1px solid var(--line); border-radius: 6px; }
label { display: flex; flex-direction: column; font-size: 13px; color: var(--muted); }
input, button { font: inherit; padding: 4px 8px; }
button { background: var(--bar); color: #fff; border: 0; border-radius: 4px; padding: 6px 14px; }
.kpis { display: flex; gap: 24px; margin: 16px 0; }
.kpi strong { display: block; font-size: 22px; }
.chart { width: 100%; height: auto; }
.bar { fill: var(--bar); } .bar-label, .bar-value { font-size: 14px; fill: var(--ink); }
.bar-note { font-size: 12px; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: right; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dt { color: var(--muted); }
@media print { form, .downloads { display: none; } body { padding: 0; } }
`;

export interface ReportPageProps {
  report: FunnelReport;
  /** Query values as the user gave them, to refill the form. */
  query: { from: string; to: string; tz: string };
  /** Links to the same view as JSON and CSV. */
  links: { json: string; csv: string };
}

const MODE_LABEL = { ordered: 'ordered steps', strict: 'strict order', any: 'any order' } as const;

/** The whole report page. */
export const ReportPage: FC<ReportPageProps> = ({ report, query, links }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="robots" content="noindex" />
      <title>{`${report.goal.name} — goalstep report`}</title>
      <style>{raw(STYLE)}</style>
    </head>
    <body>
      <main>
        <h1>{report.goal.name}</h1>
        <p class="sub">
          Version {report.version} · entries from {report.range.from} to {report.range.to} (
          {report.range.tz}) · {report.window} window · {MODE_LABEL[report.mode]} ·{' '}
          {report.source === 'events' ? 'computed from stored events' : 'from progress rows'}
        </p>
        {report.rebuilding ? (
          <p class="notice" role="status">
            Version {report.latestVersion} is being rebuilt from stored events; this shows version{' '}
            {report.version} until it is complete.
          </p>
        ) : null}
        <form method="get" aria-label="Report view">
          <label>
            From
            <input type="date" name="from" value={query.from} />
          </label>
          <label>
            To (exclusive)
            <input type="date" name="to" value={query.to} />
          </label>
          <label>
            Time zone
            <input type="text" name="tz" value={query.tz} />
          </label>
          <label>
            Order
            <select name="mode">
              {(['ordered', 'strict', 'any'] as const).map((m) => (
                <option value={m} selected={m === report.mode}>
                  {MODE_LABEL[m]}
                </option>
              ))}
            </select>
          </label>
          <label>
            Break down by
            <select name="breakdown">
              {['', 'utm_source', 'utm_medium', 'utm_campaign', 'referrer_domain', 'device', 'browser', 'os', 'country'].map(
                (b) => (
                  <option value={b} selected={b === (report.breakdown?.by ?? '')}>
                    {b || 'nothing'}
                  </option>
                ),
              )}
            </select>
          </label>
          <button type="submit">Show</button>
        </form>
        <section class="kpis" aria-label="Summary">
          <div class="kpi">
            <strong>{report.entered.toLocaleString('en-US')}</strong> people entered
          </div>
          <div class="kpi">
            <strong>{report.completed.toLocaleString('en-US')}</strong> completed
          </div>
          <div class="kpi">
            <strong>{percent(report.completionRate)}</strong> completion within the window
          </div>
        </section>
        <h2>Funnel</h2>
        <FunnelChart report={report} />
        <h2>Steps</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col">People</th>
              <th scope="col">From previous</th>
              <th scope="col">From first</th>
              <th scope="col">Dropped</th>
              <th scope="col">In progress</th>
              <th scope="col">Median time from previous</th>
              <th scope="col">90th percentile</th>
            </tr>
          </thead>
          <tbody>
            {report.steps.map((s) => (
              <tr data-step={s.index}>
                <td>
                  {s.index}. {s.name}
                </td>
                <td data-metric="count">{s.count}</td>
                <td>{percent(s.conversionFromPrevious)}</td>
                <td>{percent(s.conversionFromFirst)}</td>
                <td>
                  {s.dropOff} ({percent(s.dropOffRate)})
                </td>
                <td>{s.inProgress}</td>
                <td>{formatDuration(s.medianSecondsFromPrevious)}</td>
                <td>{formatDuration(s.secondsFromPrevious.p90)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {report.breakdown ? (
          <>
            <h2>By {report.breakdown.by}</h2>
            <table>
              <thead>
                <tr>
                  <th scope="col">{report.breakdown.by}</th>
                  {report.steps.map((s) => (
                    <th scope="col">{s.name}</th>
                  ))}
                  <th scope="col">Completion</th>
                </tr>
              </thead>
              <tbody>
                {report.breakdown.groups.map((g) => (
                  <tr data-group={g.value}>
                    <td>{g.value}</td>
                    {g.steps.map((s) => (
                      <td>{s.count}</td>
                    ))}
                    <td>{percent(g.completionRate)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        ) : null}
        <h2>Entries over time ({report.interval})</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">{report.interval === 'week' ? 'Week of' : 'Day'}</th>
              <th scope="col">Entered</th>
              <th scope="col">Completed</th>
            </tr>
          </thead>
          <tbody>
            {report.overTime.map((b) => (
              <tr>
                <td>{b.bucket}</td>
                <td>{b.entered}</td>
                <td>{b.completed}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <h2>What this counts</h2>
        <dl>
          {report.steps.map((s) => (
            <>
              <dt>
                Step {s.index}: {s.name}
              </dt>
              <dd>
                <code>{s.event}</code>
                {s.optional ? ' (optional)' : ''}
              </dd>
            </>
          ))}
          <dt>Counting rule</dt>
          <dd>
            A person enters at a step-1 event in the range and reaches later steps (
            {MODE_LABEL[report.mode]}) within {report.window} of it; of several attempts the furthest
            counts. Each person counts once, after devices are stitched to users. People whose window
            is still open are shown as in progress, not as dropped.
          </dd>
          <dt>Goal version</dt>
          <dd>
            {report.version}
            {report.versionNote ? ` — ${report.versionNote}` : ''}
          </dd>
        </dl>
        <p class="downloads">
          Download this view: <a href={links.csv}>CSV</a> · <a href={links.json}>JSON</a>
        </p>
      </main>
    </body>
  </html>
);

/** A plain page for a report link that does not work (unknown or revoked share, bad range). */
export const ErrorPage: FC<{ status: number; message: string }> = ({ status, message }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="robots" content="noindex" />
      <title>{`${status} — goalstep report`}</title>
      <style>{raw(STYLE)}</style>
    </head>
    <body>
      <main>
        <h1>This report cannot be shown</h1>
        <p>{status === 404 ? 'The link is unknown, revoked or expired.' : message}</p>
      </main>
    </body>
  </html>
);
