// Replays the step-health checks over events already stored in a running goalstep server, hour
// by hour, and prints every alert that would have opened, repeated and resolved. A dry run: it
// delivers nothing and changes no live alert state.
//
//   npm run alerts:backtest -- --from 2025-02-23 --to 2025-03-02 [--site demo]
//                              [--url http://localhost:8787] [--json] [--last]
//
// --json prints one JSON object per line and per action:
//   { "at", "site", "goal", "step", "kind", "action", "observed", "expected", ... }
// --last also prints, per check, what it computed on the last day: runs by verdict, the
// smallest p-value, its closest approach to firing, and its last run.
// The admin token is GOALSTEP_ADMIN_TOKEN, else the one in .dev.vars.
// Exit status: 0 done, 1 failure, 2 usage.
import { parseArgs } from 'node:util';
import { readAdminToken, readDemo } from './lib/stack.mjs';

const USAGE =
  'usage: npm run alerts:backtest -- --from <date|ISO> --to <date|ISO> [--site demo] ' +
  '[--url http://localhost:8787] [--json] [--last]';

/** A wrong argument: reported as such, with the usage, before any server is asked. */
class UsageError extends Error {}

function instant(text, name) {
  const value = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text;
  if (Number.isNaN(Date.parse(value))) {
    throw new UsageError(
      `--${name} "${text}" is not a date (2025-02-23) or an ISO instant (2025-02-23T06:00:00Z)`,
    );
  }
  return new Date(Date.parse(value)).toISOString();
}

/** Why a request never got an answer, and what to do about it. */
function unreachable(url, base, error) {
  const cause = error.cause?.code ?? error.cause?.message ?? error.message;
  const what =
    error.name === 'TimeoutError'
      ? 'no answer within 5 minutes (a shorter --from/--to range is faster)'
      : `cannot reach the server (${cause})`;
  return (
    `POST ${url} failed: ${what}. Start goalstep with \`npm start\` (it listens on ` +
    `http://localhost:8787), or pass --url with the address of a running server ` +
    `(tried ${base}).`
  );
}

/** An error answer, with a hint for the usual causes. */
function refused(url, status, text) {
  const hint =
    status === 401 || status === 403
      ? ' (set GOALSTEP_ADMIN_TOKEN to an admin token of that server, or use its .dev.vars)'
      : status === 404
        ? ' (is --site the id of a site on that server?)'
        : '';
  return `POST ${url} → ${status} ${text.slice(0, 500)}${hint}`;
}

const fmt = (n) => (Math.abs(n) < 10 ? n.toFixed(3) : String(Math.round(n)));

async function main() {
  const { values } = parseArgs({
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      site: { type: 'string' },
      url: { type: 'string', default: 'http://localhost:8787' },
      json: { type: 'boolean', default: false },
      last: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || !values.from || !values.to) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const from = instant(values.from, 'from');
  const to = instant(values.to, 'to');
  if (!(to > from)) throw new UsageError(`--to (${to}) must be after --from (${from})`);
  if (!URL.canParse(values.url)) throw new UsageError(`--url "${values.url}" is not a URL`);
  const site = values.site ?? readDemo().siteId;
  const base = values.url.replace(/\/+$/, '');
  const url = `${base}/admin/sites/${encodeURIComponent(site)}/alerts/backtest`;
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${process.env.GOALSTEP_ADMIN_TOKEN || readAdminToken()}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ from, to }),
      signal: AbortSignal.timeout(300_000),
    });
  } catch (error) {
    throw new Error(unreachable(url, base, error));
  }
  const text = await response.text();
  if (!response.ok) throw new Error(refused(url, response.status, text));
  const result = JSON.parse(text);

  for (const a of result.actions) {
    if (values.json) {
      const { at, site: s, goal, step, kind, action, observed, expected, ...rest } = a;
      console.log(
        JSON.stringify({ at, site: s, goal, step, kind, action, observed, expected, ...rest }),
      );
    } else {
      console.log(
        `${a.at}  ${a.action.padEnd(7)} ${a.severity.padEnd(8)} ${a.kind.padEnd(22)} ` +
          `${(a.step ?? '-').padEnd(24)} observed ${fmt(a.observed)} expected ${fmt(a.expected)} ` +
          `(${a.window.start} – ${a.window.end})`,
      );
    }
  }
  if (!values.json)
    console.log(`${result.actions.length} alert actions from ${result.from} to ${result.to}`);
  if (values.last) {
    // What each check computed on the last day (the last 24 judged hours), and its last run.
    const lastRun = new Map(result.last.map((e) => [e.key, e]));
    for (const day of result.lastDay) {
      const e = lastRun.get(day.key);
      const line = {
        check: day.key,
        lastDay: { runs: day.runs, verdicts: day.verdicts, minPValue: day.minPValue },
        closest: day.closest,
        lastRun: e && {
          verdict: e.verdict,
          observed: e.observed,
          expected: e.expected,
          window: [new Date(e.windowStart).toISOString(), new Date(e.windowEnd).toISOString()],
          detail: e.detail,
        },
      };
      console.log(values.json ? JSON.stringify({ last: line }) : JSON.stringify(line));
    }
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`alerts:backtest: ${error.message}`);
    // A wrong argument (ours, or one parseArgs refused) is a usage error, not a server problem.
    const usage = error instanceof UsageError || error.code?.startsWith('ERR_PARSE_ARGS');
    if (usage) console.error(USAGE);
    process.exitCode = usage ? 2 : 1;
  },
);
