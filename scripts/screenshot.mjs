#!/usr/bin/env node
/**
 * `npm run screenshot`: the README's picture of the report. Starts a throw-away stack, replays
 * the Puffy week, and saves the demo report (broken down by device) as docs/report.png.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { launchBrowser } from './lib/browser.mjs';
import { replay } from './lib/replay-core.mjs';
import {
  freePort,
  readDemo,
  repoRoot,
  reportUrl,
  startStack,
  waitForSettled,
} from './lib/stack.mjs';

const adminToken = 'adm_screenshot_token_0000000001';
const persistTo = mkdtempSync(join(tmpdir(), 'goalstep-screenshot-'));
const stack = await startStack({
  port: await freePort(),
  persistTo,
  vars: { ADMIN_TOKEN: adminToken },
});
const browser = await launchBrowser();
try {
  const dir = resolve(repoRoot, '..', 'shared', 'data', 'puffy');
  await replay({ dir, url: stack.baseUrl, adminToken, siteId: readDemo().siteId });
  await waitForSettled(stack.baseUrl, adminToken);
  const page = await browser.newPage({ viewport: { width: 1000, height: 1200 } });
  const url = `${reportUrl(stack.baseUrl, { from: '2025-02-23', to: '2025-03-02' })}&breakdown=device`;
  await page.goto(url);
  const out = join(repoRoot, 'docs', 'report.png');
  await page.screenshot({ path: out, fullPage: true });
  console.log(`saved ${out}`);
} finally {
  await browser.close();
  await stack.stop();
  rmSync(persistTo, { recursive: true, force: true });
}
