// Independent DuckDB computation of the demo goal's funnel over the Puffy CSVs, to check the
// report goalstep serves after `npm run replay`.
//
//   node scripts/oracle.mjs <dir> [--from 2025-02-23] [--to 2025-03-02] [--files a.csv,b.csv]
//                                 [--stats]
//
// Dates are UTC midnights (or full ISO instants); `to` is exclusive. Without a range, the whole
// days covered by the selected files are used. Prints the report JSON; `--stats` prints the
// identity facts and the funnel with and without stitching instead.
import { parseArgs } from 'node:util';
import { computeFunnel, demoGoal, stitchStats } from './lib/oracle-core.mjs';

const USAGE =
  'usage: node scripts/oracle.mjs <dir> [--from YYYY-MM-DD] [--to YYYY-MM-DD] ' +
  '[--files a.csv,b.csv] [--stats]';

function instant(text) {
  if (text === undefined) return undefined;
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00.000Z` : text;
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new Error(`invalid date: ${text}`);
  return new Date(ms).toISOString();
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      files: { type: 'string' },
      stats: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.error(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  if ((values.from === undefined) !== (values.to === undefined)) {
    throw new Error('give both --from and --to, or neither');
  }
  const { steps, windowSeconds } = demoGoal();
  const options = {
    dir: positionals[0],
    files: values.files?.split(',').map((name) => name.trim()).filter(Boolean),
    steps,
    windowSeconds,
    from: instant(values.from),
    to: instant(values.to),
  };
  if (values.stats) {
    console.log(JSON.stringify(await stitchStats(options), null, 2));
    return;
  }
  const report = await computeFunnel(options);
  console.log(JSON.stringify(report, null, 2));
}

main().catch((error) => {
  console.error(`oracle: ${error.message}`);
  process.exitCode = 1;
});
