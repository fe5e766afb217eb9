// The demo goal on the real Puffy data in each ordering mode, with breakdowns by device type
// and by utm_source, and the time of each report uncached (admin `Cache-Control: no-cache`).
// Starts its own throw-away stack on a free port, replays the CSVs, prints Markdown, stops.
//
//   node scripts/funnel-modes.mjs [<puffy dir>] [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { replay } from './lib/replay-core.mjs';
import { freePort, readDemo, repoRoot, startStack } from './lib/stack.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: 'string', default: '3' } },
});
const dir = resolve(positionals[0] ?? join(repoRoot, '../shared/data/puffy'));
const runs = Number(values.runs);
const RANGE = { from: '2025-02-23', to: '2025-03-02' };

const adminToken = 'adm_funnel_modes_token_000000001';
const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-funnel-modes-'));
const port = await freePort();
const stack = await startStack({
  port,
  persistTo,
  vars: { ADMIN_TOKEN: adminToken },
});
/** The script's output: Markdown on stdout. */
const print = (text) => process.stdout.write(`${text}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  const demo = readDemo();
  const replayed = await replay({
    dir,
    url: stack.baseUrl,
    adminToken,
    siteId: demo.siteId,
    batchSize: 100,
    concurrency: 4,
  });
  print(`replayed ${replayed.sent} rows, ${replayed.accepted} events accepted\n`);

  for (const mode of ['ordered', 'strict', 'any']) {
    for (const breakdown of [null, 'device', 'utm_source']) {
      const params = new URLSearchParams({ ...RANGE, format: 'json' });
      if (mode !== 'ordered') params.set('mode', mode);
      if (breakdown) params.set('breakdown', breakdown);
      const url = `${stack.baseUrl}/r/${demo.shareToken}/${demo.goal.id}?${params}`;
      const times = [];
      let report;
      for (let i = 0; i < runs; i += 1) {
        const started = performance.now();
        const res = await fetch(url, {
          headers: { Authorization: `Bearer ${adminToken}`, 'Cache-Control': 'no-cache' },
        });
        report = await res.json();
        times.push(performance.now() - started);
        if (!res.ok || res.headers.get('x-goalstep-cache') !== 'bypass') {
          throw new Error(`${url}: ${res.status} cache=${res.headers.get('x-goalstep-cache')}`);
        }
      }
      const title = `${mode}${breakdown ? `, by ${breakdown}` : ''}`;
      print(
        `### ${title} — source ${report.source}, uncached median ${median(times).toFixed(0)} ms ` +
          `(min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)}, ${runs} runs)\n`,
      );
      const groups = report.breakdown ? report.breakdown.groups : [{ value: 'all', ...report }];
      // Groups without a value of their own: people with no value, and the rest past `top`.
      const label = (g) =>
        g.kind === 'none' ? 'No value' : g.kind === 'other' ? 'Other values' : g.value;
      print(
        `| group | ${report.steps.map((s) => s.name).join(' | ')} | completion | median s to last |`,
      );
      print(`| --- | ${report.steps.map(() => '---').join(' | ')} | --- | --- |`);
      for (const g of groups) {
        const last = g.steps[g.steps.length - 1];
        const counts = g.steps.map((s) => s.count).join(' | ');
        print(
          `| ${label(g)} | ${counts} | ${g.completionRate ?? '–'} | ` +
            `${last.secondsFromPrevious.median ?? '–'} |`,
        );
      }
      print('');
    }
  }
} finally {
  await stack.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
