// Starts a local goalstep stack (D1 migrations + `wrangler dev`) for `npm start` and the e2e
// tests, seeds the demo site, and stops it again. Node built-ins only, so it runs before any
// build step.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the directory holding wrangler.toml). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const DEV_VARS = join(repoRoot, '.dev.vars');
const DEV_VARS_EXAMPLE = join(repoRoot, '.dev.vars.example');
const HEALTH_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
const LOG_TAIL_CHARS = 4_000;

/** The fixed demo values of scripts/demo.json (site, write key, share token, goal). */
export function readDemo() {
  return JSON.parse(readFileSync(join(repoRoot, 'scripts', 'demo.json'), 'utf8'));
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

// Wrangler 4 needs Node 22; the repo pins it as the `node` devDependency, while the shell that
// runs `node scripts/start.mjs` may have an older system node first on PATH.
function nodeBinary() {
  const pinned = join(repoRoot, 'node_modules', '.bin', 'node');
  return existsSync(pinned) ? pinned : process.execPath;
}

function wranglerEnv() {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: 'false',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    // No TTY prompts: the stack runs unattended (tests, CI) as often as from a terminal.
    CI: process.env.CI ?? 'true',
    FORCE_COLOR: '0',
  };
}

function wranglerArgs(args) {
  return [join(repoRoot, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), ...args];
}

/** Parses `KEY=value` lines (comments and blanks skipped), as in .dev.vars. */
function parseVars(text) {
  const vars = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match) continue;
    vars[match[1]] = match[2].replace(/^(['"])(.*)\1$/, '$2');
  }
  return vars;
}

/** Creates .dev.vars from .dev.vars.example when it is missing (a fresh clone). */
export function ensureDevVars() {
  if (!existsSync(DEV_VARS)) copyFileSync(DEV_VARS_EXAMPLE, DEV_VARS);
  return DEV_VARS;
}

/** The admin token `wrangler dev` uses by default: .dev.vars, else .dev.vars.example. */
export function readAdminToken() {
  const file = existsSync(DEV_VARS) ? DEV_VARS : DEV_VARS_EXAMPLE;
  const token = parseVars(readFileSync(file, 'utf8')).ADMIN_TOKEN;
  if (!token) throw new Error(`no ADMIN_TOKEN in ${file}`);
  return token;
}

/** Resolves whether `port` can be bound on 127.0.0.1 right now. */
export function isPortFree(port) {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

/**
 * Ports above 1023 that browsers refuse to load (the Fetch standard's "bad ports"): a test web
 * server on one of them fails in Chromium with ERR_UNSAFE_PORT.
 */
const BLOCKED_PORTS = new Set([
  1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669,
  6679, 6697, 10080,
]);

/** A port in `[from, from + span)` that is free right now and loads in browsers, at random. */
export async function freePort(from = 8790, span = 500) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + Math.floor(Math.random() * span);
    if (BLOCKED_PORTS.has(port)) continue;
    if (await isPortFree(port)) return port;
  }
  throw new Error(`no free port in ${from}..${from + span - 1}`);
}

/** Runs a wrangler command to completion; rejects with its output when it fails. */
function runWrangler(args, { cwd = repoRoot } = {}) {
  return new Promise((done, fail) => {
    const child = spawn(nodeBinary(), wranglerArgs(args), {
      cwd,
      env: wranglerEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('error', fail);
    child.once('exit', (code, signal) => {
      if (code === 0) done(output);
      else fail(new Error(`wrangler ${args.join(' ')} failed (${signal ?? code}):\n${output}`));
    });
  });
}

function isGroupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

async function request(method, url, adminToken, body) {
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${url} → ${response.status} ${text.slice(0, 500)}`);
  }
  return text ? JSON.parse(text) : null;
}

/** Creates (or updates) the demo site, goal and share of scripts/demo.json; idempotent. */
export async function seedDemo(baseUrl, adminToken) {
  const demo = readDemo();
  const site = `${baseUrl}/admin/sites/${encodeURIComponent(demo.siteId)}`;
  await request('PUT', site, adminToken, { name: demo.siteName, writeKey: demo.writeKey });
  // The demo's ingest settings switch rate limits off: local tests and benchmarks send
  // everything from one address with one key.
  if (demo.ingestSettings) {
    await request('PATCH', `${site}/ingest-settings`, adminToken, demo.ingestSettings);
  }
  const { id: goalId, ...goal } = demo.goal;
  const goalUrl = `${site}/goals/${encodeURIComponent(goalId)}`;
  const saved = await request('PUT', goalUrl, adminToken, goal);
  await request('POST', `${site}/shares`, adminToken, { token: demo.shareToken });
  return { siteId: demo.siteId, goalId, goalVersion: saved?.version, writeKey: demo.writeKey };
}

/** The demo goal's report URL, with an optional `{ from, to, tz, format }` query. */
export function reportUrl(baseUrl, query = {}) {
  const demo = readDemo();
  const params = new URLSearchParams();
  for (const key of ['from', 'to', 'tz', 'format', 'breakdown', 'mode', 'window']) {
    if (query[key]) params.set(key, query[key]);
  }
  const search = params.size > 0 ? `?${params}` : '';
  const path = `/r/${encodeURIComponent(demo.shareToken)}/${encodeURIComponent(demo.goal.id)}`;
  return `${baseUrl.replace(/\/+$/, '')}${path}${search}`;
}

/**
 * The demo goal's report as JSON for `query`. With `adminToken` it asks for a fresh answer (the
 * admin-only `Cache-Control: no-cache` bypass of the 60 s report cache), so that a test sees the
 * data of its last request rather than a cached answer.
 */
export async function fetchReport(baseUrl, query = {}, adminToken) {
  const headers = adminToken
    ? { authorization: `Bearer ${adminToken}`, 'cache-control': 'no-cache' }
    : {};
  const url = reportUrl(baseUrl, { ...query, format: 'json' });
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url} → ${response.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/**
 * Opens a stack's local D1 database file (under its `persistTo`) with `node:sqlite`, for bulk
 * loads a benchmark cannot afford through HTTP. The stack keeps running; writers wait their turn.
 */
export async function openLocalD1(persistDir) {
  const { DatabaseSync } = await import('node:sqlite');
  const d1Dir = join(persistDir, 'v3', 'd1', 'miniflare-D1DatabaseObject');
  const file = readdirSync(d1Dir).find((f) => f.endsWith('.sqlite') && f !== 'metadata.sqlite');
  const d1 = new DatabaseSync(join(d1Dir, file));
  d1.exec('PRAGMA busy_timeout = 10000');
  return d1;
}

/**
 * Polls a site's pending batches (the demo's by default) every `pollMs` until none is left.
 * `/pending` counts no stored event (`/status` counts every one), so polling does not slow what
 * it waits for.
 */
export async function waitForPending(
  baseUrl,
  adminToken,
  { timeoutMs = 120_000, siteId = readDemo().siteId, pollMs = 50 } = {},
) {
  const url = `${baseUrl}/admin/sites/${encodeURIComponent(siteId)}/pending`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { pendingBatches } = await request('GET', url, adminToken);
    if (pendingBatches === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`still ${pendingBatches} pending batches after ${timeoutMs} ms`);
    }
    await sleep(pollMs);
  }
}

/** `waitForPending`, then the site's status. */
export async function waitForSettled(baseUrl, adminToken, options = {}) {
  await waitForPending(baseUrl, adminToken, options);
  const siteId = options.siteId ?? readDemo().siteId;
  return request('GET', `${baseUrl}/admin/sites/${encodeURIComponent(siteId)}/status`, adminToken);
}

/**
 * Applies the D1 migrations into `persistTo`, starts `wrangler dev` on 127.0.0.1:`port` in its
 * own process group, waits for /healthz and seeds the demo. `vars` (e.g. `{ ADMIN_TOKEN }`)
 * replace .dev.vars for this stack only; without them .dev.vars is used (created from the
 * example if missing). `log(line)` receives wrangler's output lines as they come. Resolves with
 * `{ baseUrl, adminToken, logFile, pid, inspectorPort, exited, stop() }`; `exited` resolves with
 * `{ code, signal }` when wrangler exits, whoever stopped it.
 */
export async function startStack({
  port = 8787,
  persistTo = join(repoRoot, '.wrangler', 'state'),
  vars,
  log,
  logFile,
  seed = true,
  healthTimeoutMs = HEALTH_TIMEOUT_MS,
  configPath,
} = {}) {
  // Another Worker's config (the benchmark's bare-insert floor); goalstep's by default.
  const configArgs = configPath ? ['--config', resolve(configPath)] : [];
  const persistDir = resolve(persistTo);
  mkdirSync(persistDir, { recursive: true });
  const logPath = resolve(logFile ?? join(persistDir, 'wrangler-dev.log'));
  mkdirSync(dirname(logPath), { recursive: true });

  // A server already on the port would answer /healthz and fool the readiness check.
  if (!(await isPortFree(port))) {
    throw new Error(`port ${port} on 127.0.0.1 is in use (another wrangler dev still running?)`);
  }

  const devArgs = [];
  let adminToken;
  if (vars) {
    if (!vars.ADMIN_TOKEN) throw new Error('startStack: `vars` must include ADMIN_TOKEN');
    // An env file replaces .dev.vars entirely (wrangler reads one or the other), so a test stack
    // neither needs nor changes the developer's .dev.vars. It holds secrets: owner-only.
    const envFile = join(persistDir, 'stack.env');
    // A local stack's alert receivers listen on loopback, so private channel hosts are allowed
    // unless the caller says otherwise (as .dev.vars.example does for `npm start`).
    const stackVars = { ALERTS_ALLOW_PRIVATE_HOSTS: '1', ...vars };
    const lines = Object.entries(stackVars).map(
      ([key, value]) => `${key}=${JSON.stringify(value)}`,
    );
    writeFileSync(envFile, `${lines.join('\n')}\n`, { mode: 0o600 });
    chmodSync(envFile, 0o600);
    devArgs.push('--env-file', envFile);
    adminToken = vars.ADMIN_TOKEN;
  } else {
    ensureDevVars();
  }
  adminToken ??= readAdminToken();

  const migrate = [
    'd1',
    'migrations',
    'apply',
    'goalstep',
    '--local',
    '--persist-to',
    persistDir,
    ...configArgs,
  ];
  await runWrangler(migrate);

  const logStream = createWriteStream(logPath, { flags: 'a' });
  let tail = '';
  let partial = '';
  const capture = (chunk) => {
    const text = chunk.toString();
    logStream.write(text);
    tail = (tail + text).slice(-LOG_TAIL_CHARS);
    if (!log) return;
    const lines = (partial + text).split(/\r?\n/);
    partial = lines.pop() ?? '';
    for (const line of lines) log(line);
  };

  // Distinct from the e2e port range of freePort(), and never wrangler's fixed default 9229, so
  // several stacks (npm start next to a test run) do not fight over the devtools port.
  const inspectorPort = await freePort(9300, 600);
  const child = spawn(
    nodeBinary(),
    wranglerArgs([
      'dev',
      '--local',
      '--port',
      String(port),
      '--ip',
      '127.0.0.1',
      '--inspector-ip',
      '127.0.0.1',
      '--inspector-port',
      String(inspectorPort),
      '--persist-to',
      persistDir,
      '--test-scheduled',
      '--show-interactive-dev-session=false',
      ...configArgs,
      ...devArgs,
    ]),
    {
      cwd: repoRoot,
      env: wranglerEnv(),
      // Its own process group, so that stop() reaches workerd and wrangler's helper processes.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout.on('data', capture);
  child.stderr.on('data', capture);

  let exited = false;
  const exitPromise = new Promise((done) => {
    child.once('exit', (code, signal) => {
      exited = true;
      done({ code, signal });
    });
    child.once('error', (error) => {
      exited = true;
      capture(`spawn failed: ${error.message}\n`);
      done({ code: null, signal: null });
    });
  });
  const pid = child.pid;

  let stopping;
  /** Stops the whole process group: SIGTERM, then SIGKILL after 5 s; waits until it is gone. */
  const stop = () =>
    (stopping ??= (async () => {
      if (pid) {
        signalGroup(pid, 'SIGTERM');
        const deadline = Date.now() + STOP_GRACE_MS;
        while (isGroupAlive(pid) && Date.now() < deadline) await sleep(100);
        if (isGroupAlive(pid)) signalGroup(pid, 'SIGKILL');
        while (isGroupAlive(pid)) await sleep(50);
      }
      await exitPromise;
      if (log && partial) log(partial);
      await new Promise((done) => logStream.end(done));
    })());

  const baseUrl = `http://127.0.0.1:${port}`;
  const fail = async (message, cause) => {
    await stop();
    throw new Error(`${message}\n--- ${logPath} (tail) ---\n${tail}`, { cause });
  };

  const deadline = Date.now() + healthTimeoutMs;
  for (;;) {
    if (exited) await fail(`wrangler dev exited before ${baseUrl}/healthz answered`);
    try {
      const response = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await fail(`no answer from ${baseUrl}/healthz in ${healthTimeoutMs} ms`);
    }
    await sleep(250);
  }

  if (seed) {
    try {
      await seedDemo(baseUrl, adminToken);
    } catch (error) {
      await fail(`seeding the demo failed: ${error.message}`, error);
    }
  }
  return { baseUrl, adminToken, logFile: logPath, pid, inspectorPort, exited: exitPromise, stop };
}
