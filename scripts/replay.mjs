// Replays the Puffy CSVs into a running goalstep server (the demo site of scripts/demo.json).
//
//   npm run replay -- <dir> [--url http://localhost:8787] [--batch 100] [--concurrency 4]
//                           [--files events_20250223.csv,...] [--json] [--no-sent-at]
//
// Progress goes to stderr; the summary (or one JSON line with --json) and, as the very last
// line, the demo goal's report URL for the replayed days go to stdout. Exit status: 0 done,
// 1 unrecoverable failure, 2 usage, 3 sent but reports still pending after 120 s.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { replay, reportUrl } from './lib/replay-core.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE =
  'usage: npm run replay -- <dir> [--url http://localhost:8787] [--batch 100] ' +
  '[--concurrency 4] [--files a.csv,b.csv] [--json] [--no-sent-at]';

/** ADMIN_TOKEN from .dev.vars, else from the committed development example. */
function adminToken() {
  for (const name of ['.dev.vars', '.dev.vars.example']) {
    const path = join(ROOT, name);
    if (!existsSync(path)) continue;
    for (const line of readFileSync(path, 'utf8').split(/\r?\n/)) {
      const match = /^\s*ADMIN_TOKEN\s*=\s*(.*?)\s*$/.exec(line);
      if (match) return match[1].replace(/^(["'])(.*)\1$/, '$2');
    }
  }
  throw new Error('ADMIN_TOKEN not found in .dev.vars or .dev.vars.example');
}

function positiveInteger(text, name) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`--${name} must be a positive integer`);
  }
  return value;
}

function progressPrinter() {
  const tty = process.stderr.isTTY;
  let last = 0;
  let pending;
  const format = (p) =>
    `rows ${p.rows}  sent ${p.sent}  accepted ${p.accepted}  duplicates ${p.duplicates}  ` +
    `rejected ${p.rejected}  ${Math.round(p.eventsPerSecond)} events/s`;
  return {
    update(p) {
      pending = p;
      const now = Date.now();
      // A TTY line is cheap to redraw; a log file gets a line every few seconds at most.
      if (now - last < (tty ? 100 : 2000)) return;
      last = now;
      if (tty) process.stderr.write(`\r${format(p)}\x1b[K`);
      else process.stderr.write(`${format(p)}\n`);
      pending = undefined;
    },
    done() {
      if (pending && !tty) process.stderr.write(`${format(pending)}\n`);
      else if (pending) process.stderr.write(`\r${format(pending)}\x1b[K`);
      if (tty && last) process.stderr.write('\n');
    },
  };
}

function summaryLines(summary) {
  const codes = Object.entries(summary.rejectedByCode)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const filtered = Object.entries(summary.filteredByCode ?? {})
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const lines = [
    `rows read         ${summary.rows}`,
    `events sent       ${summary.sent} in ${summary.batches} batches (${summary.retries} retries;` +
      ' a row with an e-mail hash also sends an identify)',
    `accepted          ${summary.accepted}`,
    `duplicates        ${summary.duplicates}`,
    `rejected          ${summary.rejected}${codes ? ` (${codes})` : ''}`,
    `filtered          ${summary.filtered ?? 0}` +
      (filtered ? ` (${filtered}: kept, not counted)` : ''),
    `wall time         ${summary.wallSeconds.toFixed(1)} s`,
    `events/s          ${summary.eventsPerSecond ?? '-'} (while sending)`,
  ];
  if (summary.warnings) lines.push(`warnings          ${summary.warnings}`);
  if (!summary.settled) {
    lines.push(
      summary.pendingError
        ? `WARNING: polls failed for 10 s while reports were pending: ${summary.pendingError}`
        : 'WARNING: reports still had pending batches after 120 s; the numbers may lag',
    );
  }
  return lines;
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string', default: 'http://localhost:8787' },
      batch: { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '4' },
      files: { type: 'string' },
      json: { type: 'boolean', default: false },
      'no-sent-at': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  if (!existsSync(positionals[0])) {
    console.error(
      `replay: no directory ${positionals[0]}: give the directory that holds the Puffy week's ` +
        'events_*.csv files (README, "Try it")',
    );
    return 2;
  }
  const demo = JSON.parse(readFileSync(join(ROOT, 'scripts', 'demo.json'), 'utf8'));
  const printer = progressPrinter();
  let summary;
  try {
    summary = await replay({
      dir: positionals[0],
      url: values.url,
      adminToken: adminToken(),
      siteId: demo.siteId,
      batchSize: positiveInteger(values.batch, 'batch'),
      concurrency: positiveInteger(values.concurrency, 'concurrency'),
      files: values.files
        ?.split(',')
        .map((name) => name.trim())
        .filter(Boolean),
      sentAt: !values['no-sent-at'],
      onProgress: printer.update,
    });
  } finally {
    printer.done();
  }
  const link = reportUrl(values.url, demo.shareToken, demo.goal.id, summary);
  if (values.json) {
    console.log(JSON.stringify({ ...summary, reportUrl: link }));
  } else {
    for (const line of summaryLines(summary)) console.log(line);
  }
  console.log(link);
  return summary.settled ? 0 : 3;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`replay: ${error.message}`);
    process.exitCode = 1;
  },
);
