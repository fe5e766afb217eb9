// Replays the Puffy CSVs into a throw-away local stack and prints how many events each ingest
// reason code got (rejected and filtered), read back from the rejected-events table through
// the admin API. The numbers of docs/INGEST.md come from here: `node scripts/ingest-reasons.mjs`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { replay } from './lib/replay-core.mjs';
import { freePort, repoRoot, startStack } from './lib/stack.mjs';

const dir = process.argv[2] ?? resolve(repoRoot, '../shared/data/puffy');
const adminToken = 'adm_reasons_local_token_0000000001';
const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-reasons-'));
const port = await freePort();
const stack = await startStack({
  port,
  persistTo,
  vars: { ADMIN_TOKEN: adminToken },
});
try {
  const summary = await replay({ dir, url: stack.baseUrl, adminToken, siteId: 'demo' });
  const response = await fetch(`${stack.baseUrl}/admin/sites/demo/rejected?limit=1`, {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  const { byCode } = await response.json();
  const status = await (
    await fetch(`${stack.baseUrl}/admin/sites/demo/status`, {
      headers: { authorization: `Bearer ${adminToken}` },
    })
  ).json();
  process.stdout.write(
    `${JSON.stringify(
      {
        sent: summary.sent,
        accepted: summary.accepted,
        stored: status.events,
        byCode,
        warningsByCode: summary.warningsByCode,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await stack.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
