// `npm start`: the local goalstep stack on http://localhost:8787 with the demo site seeded. Data
// lives in .wrangler/state (wrangler's default), so it survives restarts.
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readDemo, repoRoot, reportUrl, startStack } from './lib/stack.mjs';

// PORT moves the stack when 8787 is taken (the replay then needs `--url`).
const PORT = Number(process.env.PORT ?? 8787);
const PUBLIC = `http://localhost:${PORT}`;
const persistTo = join(repoRoot, '.wrangler', 'state');
const logFile = join(repoRoot, '.wrangler', 'goalstep-dev.log');

// Wrangler's start-up chatter goes to the log file only; once the summary is printed, every line
// it writes is shown as it comes.
let streaming = false;
const log = (line) => {
  if (streaming) process.stdout.write(`${line}\n`);
};

console.log(`Starting goalstep on ${PUBLIC} (D1 migrations, wrangler dev, demo seed)...`);
let stack;
try {
  stack = await startStack({ port: PORT, persistTo, logFile, log });
} catch (error) {
  console.error(`\ngoalstep did not start: ${error.message}`);
  process.exit(1);
}

// Whatever ends this process, do not leave wrangler and workerd behind in their own group.
process.on('exit', () => {
  try {
    process.kill(-stack.pid, 'SIGKILL');
  } catch {
    // Already stopped.
  }
});

const demo = readDemo();
const rel = (path) => relative(process.cwd(), path) || '.';
// The Puffy week next to this checkout, as the workspace holds it; elsewhere, its placeholder.
const puffy = join(repoRoot, '..', 'shared', 'data', 'puffy');
const puffyArg = existsSync(puffy) ? rel(puffy) : '<directory of the Puffy CSV files>';
const puffyRange = { from: '2025-02-23', to: '2025-03-02' };
// The replay's own default is port 8787: another port has to be named.
const replayUrl = PUBLIC === 'http://localhost:8787' ? '' : ` --url ${PUBLIC}`;
console.log(`
goalstep is running on ${PUBLIC}

  Beacon endpoint   ${PUBLIC}/v1/batch   (Segment HTTP API: also /v1/track, /v1/page, ...)
  Write key         ${demo.writeKey}   (site "${demo.siteId}")
  Website tag       <script defer src="${PUBLIC}/t.js" data-write-key="${demo.writeKey}"></script>
  Import endpoint   ${PUBLIC}/v1/import?site=${demo.siteId}   (Authorization: Bearer <admin token>)
  Admin token       ADMIN_TOKEN in ${rel(join(repoRoot, '.dev.vars'))}
  Demo report       ${reportUrl(PUBLIC)}   (last 30 days)
  Puffy days        ${reportUrl(PUBLIC, puffyRange)}
                    (format=json or format=csv in the query for data instead of the page)

  Load the Puffy sample data in a second terminal (the directory of its CSV files):
    npm run replay -- ${puffyArg}${replayUrl}

  Data: ${rel(persistTo)}   Log: ${rel(logFile)}   Ctrl-C stops.
`);
streaming = true;

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping goalstep...`);
  await stack.stop();
  console.log('stopped.');
  process.exit(0);
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));

const { code, signal } = await stack.exited;
if (!stopping) {
  const how = signal ?? `code ${code}`;
  console.error(`\nwrangler dev exited unexpectedly (${how}); see ${rel(logFile)}`);
  await stack.stop();
  process.exit(1);
}
