/**
 * The report as a server-rendered page: readable without JavaScript, charts as inline SVG, every
 * view a plain GET link. Hono's JSX escapes every interpolated value.
 */
import { raw } from 'hono/html';
import type { FC } from 'hono/jsx';
import type { StepHealthIncident } from '../alerts/alert-store';
import type { Mode } from '../funnel/definition';
import { filterParam, type FunnelReport } from './build-report';
import { SEGMENT_COLUMNS } from './funnel-query';
import { localBound } from './range';
import {
  formatDuration,
  FunnelChart,
  OverTimeChart,
  percent,
  TimeToStepChart,
} from './report-charts';

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
input, select, button { font: inherit; padding: 4px 8px; }
input[type="number"] { width: 5em; } input.window { width: 5em; }
fieldset { border: 0; padding: 0; margin: 0; display: flex; gap: 12px; flex-wrap: wrap; }
legend { font-size: 13px; color: var(--muted); padding: 0; }
button { background: var(--bar); color: #fff; border: 0; border-radius: 4px; padding: 6px 14px; }
.kpis { display: flex; gap: 24px; margin: 16px 0; }
.kpi strong { display: block; font-size: 22px; }
.chart { width: 100%; height: auto; }
.bar { fill: var(--bar); } .track { fill: #dbe6fb; } .p90 { fill: #9bb8f0; }
.line { fill: none; stroke: #1a7f37; stroke-width: 2; } .dot { fill: #1a7f37; }
.axis { stroke: var(--line); } .rate { fill: #1a7f37; }
.axis-label, .legend text { font-size: 12px; fill: var(--muted); }
.bar-label, .bar-value { font-size: 14px; fill: var(--ink); }
.health li { margin: 4px 0; } .sev-critical, .sev-warning { font-weight: 600; }
.sev-critical { color: #a40e26; } .sev-warning { color: #7d4e00; }
.bar-note { font-size: 12px; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: right; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dt { color: var(--muted); }
em.synthetic { color: var(--muted); }
@media print { form, .downloads { display: none; } body { padding: 0; } }
`;

/** Which goal version the page shows, and which it would show by default. */
export interface VersionChoice {
  shown: number;
  /** True when the link asks for a version other than the default one. */
  pinned: boolean;
  /** The version shown when none is asked for: the newest whose progress is complete. */
  newestReady: number;
  latest: number;
}

export interface ReportPageProps {
  report: FunnelReport;
  /** Step-health incidents about this goal open during the range or now, newest first. */
  health: StepHealthIncident[];
  versions: VersionChoice;
  /** The goal's own mode and window: the form leaves them empty unless the view overrides. */
  defined: { mode: Mode; window: string };
  /** Links to the same view as JSON and CSV. */
  links: { json: string; csv: string };
}

/** Labels of the groups no tracked value names, set apart from tracked values on the page. */
const SYNTHETIC = { none: 'No value', other: 'Other values', value: '' } as const;

const MODE_LABEL = { ordered: 'ordered steps', strict: 'strict order', any: 'any order' } as const;
/** Which data answered, as the page says it (times from rollups are within 1 %, METRICS.md). */
const SOURCE_LABEL = {
  progress: 'from progress rows',
  rollup: 'from hourly rollups of the progress rows (times within 1 %)',
  events: 'computed from stored events',
} as const;

/** The whole report page. */
export const ReportPage: FC<ReportPageProps> = ({ report, health, versions, defined, links }) => (
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
          Version {report.version} · entries {report.rangeLabel} · {report.window} window ·{' '}
          {MODE_LABEL[report.mode]} · {SOURCE_LABEL[report.source]}
          {report.filters.length > 0 ? ` · only people with ${filterText(report.filters)}` : ''}
        </p>
        {report.rebuilding ? (
          <p class="notice" role="status">
            Version {report.latestVersion} is being rebuilt from stored events. Until it is
            complete, this page shows version {report.version}.
          </p>
        ) : null}
        <ViewForm report={report} versions={versions} defined={defined} />
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
                  <tr data-group={g.value ?? undefined} data-kind={g.kind}>
                    <td>{g.value ?? <em class="synthetic">{SYNTHETIC[g.kind]}</em>}</td>
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
        <h2>Time between steps</h2>
        <TimeToStepChart report={report} />
        <h2>Conversion over time (by {report.interval} of entry)</h2>
        <p class="sub">Bars: people entering (left scale). Line: share who completed (right).</p>
        <OverTimeChart report={report} />
        <table>
          <thead>
            <tr>
              <th scope="col">{report.interval === 'week' ? 'Week of' : 'Day'}</th>
              <th scope="col">Entered</th>
              <th scope="col">Completed</th>
              <th scope="col">Completion</th>
            </tr>
          </thead>
          <tbody>
            {report.overTime.map((b) => (
              <tr>
                <td>{b.bucket}</td>
                <td>{b.entered}</td>
                <td>{b.completed}</td>
                <td>{percent(b.entered === 0 ? null : b.completed / b.entered)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <StepHealth health={health} />
        <h2>What this counts</h2>
        <dl>
          {report.glossary.map((entry) => (
            <>
              <dt>{entry.term}</dt>
              <dd>{entry.meaning}</dd>
            </>
          ))}
        </dl>
        <p class="downloads">
          Download this view: <a href={links.csv}>CSV</a> · <a href={links.json}>JSON</a>
        </p>
      </main>
    </body>
  </html>
);

/** The view's filters in words: keys must all hold, a key's values are alternatives. */
const filterText = (filters: FunnelReport['filters']) => {
  const byKey = new Map<string, string[]>();
  for (const f of filters) {
    byKey.set(f.key, [...(byKey.get(f.key) ?? []), f.value ?? 'no value']);
  }
  return [...byKey].map(([key, values]) => `${key} = ${values.join(' or ')}`).join(' and ');
};

/** A range bound as a form control: a date input, or a date-time one when it has a time. */
const BoundInput: FC<{ name: string; value: string }> = ({ name, value }) => (
  <input
    type={value.length === 10 ? 'date' : 'datetime-local'}
    step={value.length > 16 ? '0.001' : undefined}
    name={name}
    value={value}
  />
);

/** Every view parameter as a plain GET control, filled with the view shown. */
const ViewForm: FC<{
  report: FunnelReport;
  versions: VersionChoice;
  defined: { mode: Mode; window: string };
}> = ({ report, versions, defined }) => {
  const breakdowns = ['', ...Object.keys(SEGMENT_COLUMNS)];
  const by = report.breakdown?.by ?? '';
  const tz = report.range.tz;
  if (!breakdowns.includes(by)) breakdowns.push(by);
  return (
    <form method="get" aria-label="Report view">
      <label>
        From
        <BoundInput name="from" value={localBound(Date.parse(report.range.from), tz)} />
      </label>
      <label>
        To (exclusive)
        <BoundInput name="to" value={localBound(Date.parse(report.range.to), tz)} />
      </label>
      <label>
        Time zone
        <input type="text" name="tz" value={report.range.tz} />
      </label>
      <label>
        Order
        <select name="mode">
          {/* Empty: the goal's own mode, so a saved link follows the goal when it changes. */}
          <option value="" selected={report.mode === defined.mode}>
            {`the goal's own (${MODE_LABEL[defined.mode]})`}
          </option>
          {(['ordered', 'strict', 'any'] as const)
            .filter((m) => m !== defined.mode)
            .map((m) => (
              <option value={m} selected={m === report.mode}>
                {MODE_LABEL[m]}
              </option>
            ))}
        </select>
      </label>
      <label>
        Window
        <input
          class="window"
          type="text"
          name="window"
          value={report.window === defined.window ? '' : report.window}
          placeholder={`${defined.window} (the goal's)`}
          pattern="\d{1,5}\s*[mhd]"
          title="a number and m, h or d, such as 30m, 12h or 7d"
        />
      </label>
      <label>
        Break down by
        <select name="breakdown">
          {breakdowns.map((b) => (
            <option value={b} selected={b === by}>
              {b || 'nothing'}
            </option>
          ))}
        </select>
      </label>
      <label>
        Top values
        <input type="number" name="top" min="1" max="50" value={String(report.top)} />
      </label>
      <label>
        Trend by
        <select name="interval">
          {(['day', 'week'] as const).map((i) => (
            <option value={i} selected={i === report.interval}>
              {i}
            </option>
          ))}
        </select>
      </label>
      <label>
        Goal version
        <select name="version">
          <option value="" selected={!versions.pinned}>
            {`newest complete (${versions.newestReady})`}
          </option>
          {Array.from({ length: versions.latest }, (_, i) => versions.latest - i).map((v) => (
            <option value={String(v)} selected={versions.pinned && v === versions.shown}>
              {String(v)}
            </option>
          ))}
        </select>
      </label>
      <fieldset>
        <legend>
          Only people whose segment at entry is (key:value, e.g. device:mobile; the key alone for no
          value)
        </legend>
        {report.filters.map((f, i) => (
          <label>
            {`Filter ${i + 1}`}
            <input type="text" name="filter" value={filterParam(f)} />
          </label>
        ))}
        <label>
          Add a filter
          <input type="text" name="filter" value="" placeholder="utm_source:google" />
        </label>
      </fieldset>
      <button type="submit">Show</button>
    </form>
  );
};

const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16)} UTC`;

/** An incident's severity, styled by its class. */
const Badge: FC<{ severity: string }> = ({ severity }) => (
  <span class={`sev-${severity}`}>{severity}</span>
);

/** Step-health incidents about this goal: open during the range, and open now, labelled. */
const StepHealth: FC<{ health: StepHealthIncident[] }> = ({ health }) => {
  const openNow = health.filter((incident) => incident.openNow).length;
  const during = health.filter((incident) => incident.duringRange).length;
  const inRange =
    during === 0 ? 'No alert about these steps in this range.' : `${during} in this range.`;
  const when = (incident: StepHealthIncident) =>
    [incident.duringRange ? 'in this range' : null, incident.openNow ? 'open now' : null]
      .filter(Boolean)
      .join(', ');
  const seen = (n: number) => Number(n.toFixed(3));
  const kind = (incident: StepHealthIncident) => incident.kind.replaceAll('_', ' ');
  return (
    <section class="health" aria-labelledby="health-title">
      <h2 id="health-title">Step health</h2>
      <p>
        {inRange} {openNow === 0 ? 'None open now.' : `${openNow} open now.`}
      </p>
      {health.length > 0 ? (
        <ul>
          {health.map((incident) => (
            <li>
              <Badge severity={incident.severity} /> {kind(incident)} on{' '}
              <code>{incident.step ?? 'the site'}</code> since {utc(incident.since)}
              {incident.recoveredFrom === null ? '' : `, recovered ${utc(incident.recoveredFrom)}`}
              {' — '}
              {when(incident)}: {seen(incident.observed)} seen, {seen(incident.expected)} expected
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
};

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
