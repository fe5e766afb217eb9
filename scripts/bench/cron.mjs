/**
 * The `cron` section of `npm run bench`: one scheduled run (reconciler, step volumes, rebuild
 * check, retention, step-health checks, delivery) at 100 goals × 5 steps, each step its own event
 * with five weeks of hourly volumes bulk-loaded into the stack's local D1 file, a few steps broken
 * in the last hours so alerts open.
 */
import { performance } from 'node:perf_hooks';
import { openLocalD1 } from '../lib/stack.mjs';

const HOUR_MS = 3_600_000;
export const GOALS = 100;
export const STEPS = 5;
const HOURS = 5 * 7 * 24;
/** Steps whose last hours read zero: tracking broken, for the checks to find. */
const BROKEN = new Set(['ev_7_2', 'ev_42_4', 'ev_93_3']);

async function admin(baseUrl, headers, method, path, body) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/** Writes `step_volumes` and their coverage for every step event straight into the D1 file. */
async function loadVolumes(persistDir, siteId, endHour) {
  const d1 = await openLocalD1(persistDir);
  const insert = d1.prepare(
    `INSERT OR REPLACE INTO step_volumes (site_id, event, hour, count, updated_at)
     VALUES (?, ?, ?, ?, ?)`,
  );
  const fromHour = endHour - HOURS * HOUR_MS;
  d1.exec('BEGIN');
  for (let g = 0; g < GOALS; g += 1) {
    for (let s = 0; s < STEPS; s += 1) {
      const event = `ev_${g}_${s}`;
      // Funnel-shaped volumes with a daily cycle: step 1 busiest, each later step thinner.
      const base = 400 / 2 ** s;
      for (let hour = fromHour; hour < endHour; hour += HOUR_MS) {
        const cycle = 1 + 0.6 * Math.sin((2 * Math.PI * ((hour / HOUR_MS) % 24)) / 24);
        const broken = BROKEN.has(event) && hour >= endHour - 3 * HOUR_MS;
        const count = broken ? 0 : Math.round(base * cycle * (0.9 + ((hour / HOUR_MS) % 7) / 35));
        insert.run(siteId, event, hour, count, endHour);
      }
    }
  }
  d1.prepare(
    `INSERT OR REPLACE INTO volume_coverage (site_id, from_hour, to_hour) VALUES (?, ?, ?)`,
  ).run(siteId, fromHour, endHour);
  d1.exec('COMMIT');
  d1.close();
  return GOALS * STEPS * HOURS;
}

/**
 * Creates the goals, loads the volumes and times three scheduled runs at consecutive 15-minute
 * slots ending at the loaded data's last hour.
 */
export async function measureCron({ baseUrl, persistDir, adminHeaders, siteId }) {
  for (let g = 0; g < GOALS; g += 1) {
    await admin(baseUrl, adminHeaders, 'PUT', `/admin/sites/${siteId}/goals/bench-${g}`, {
      name: `Bench goal ${g}`,
      window: '7d',
      steps: Array.from({ length: STEPS }, (_, s) => ({ event: `ev_${g}_${s}` })),
    });
  }
  const endHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  const rows = await loadVolumes(persistDir, siteId, endHour);
  const runs = [];
  for (let i = 0; i < 3; i += 1) {
    const time = endHour + i * 15 * 60_000;
    const started = performance.now();
    const response = await fetch(
      `${baseUrl}/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*&time=${time}`,
    );
    await response.text();
    if (!response.ok) throw new Error(`scheduled run → ${response.status}`);
    runs.push(performance.now() - started);
  }
  const history = await admin(baseUrl, adminHeaders, 'GET', `/admin/sites/${siteId}/alerts`);
  const open = (history.open ?? history.alerts ?? []).length;
  return {
    goals: GOALS,
    steps: GOALS * STEPS,
    volumeRows: rows,
    runsMs: runs.map((ms) => Math.round(ms)),
    openAlerts: open,
  };
}
