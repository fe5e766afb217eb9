/**
 * The report page in real headless Chromium against a real stack loaded with a day of the Puffy
 * data: its numbers equal the JSON, its own controls change the view, axe finds no serious
 * accessibility problem, and a screenshot is saved (test-results/report.png).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { replay } from '../../scripts/lib/replay-core.mjs';
import {
  fetchReport,
  readDemo,
  repoRoot,
  reportUrl,
  waitForSettled,
} from '../../scripts/lib/stack.mjs';
import { launchBrowser } from './lib/browser';
import { useTestStack } from './test-stack';
import { puffyTestDir } from '../../scripts/lib/puffy.mjs';

const stack = useTestStack('report-browser');
const DATA_DIR = puffyTestDir();
const FILES = ['events_20250223.csv', 'events_20250224.csv'];
const AXE_SOURCE = readFileSync(
  createRequire(import.meta.url).resolve('axe-core/axe.min.js'),
  'utf8',
);

interface JsonReport {
  entered: number;
  steps: Array<{ count: number }>;
}

let browser: Browser;

beforeAll(async () => {
  const { baseUrl, adminToken } = stack();
  await replay({
    dir: DATA_DIR,
    url: baseUrl,
    adminToken,
    siteId: readDemo().siteId,
    files: FILES,
  });
  await waitForSettled(baseUrl, adminToken);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
});

/** The per-step people counts as the page shows them. */
async function pageCounts(page: Page): Promise<number[]> {
  const cells = await page.locator('[data-metric="count"]').allTextContents();
  return cells.map((text) => Number(text.replaceAll(',', '')));
}

describe('report page in Chromium', () => {
  it('shows the same numbers as the JSON and changes the view through its own form', async () => {
    const { baseUrl, adminToken } = stack();
    const page = await browser.newPage();
    const response = await page.goto(reportUrl(baseUrl, { from: '2025-02-23', to: '2025-02-25' }));
    expect(response?.status()).toBe(200);

    const wide = (await fetchReport(
      baseUrl,
      { from: '2025-02-23', to: '2025-02-25' },
      adminToken,
    )) as JsonReport;
    expect(wide.entered).toBeGreaterThan(1000);
    expect(await pageCounts(page)).toEqual(wide.steps.map((s) => s.count));

    // Narrow the range to the first day with the page's own controls.
    await page.getByLabel('To (exclusive)').fill('2025-02-24');
    await Promise.all([
      page.waitForURL(/to=2025-02-24/),
      page.getByRole('button', { name: 'Show' }).click(),
    ]);
    const narrow = (await fetchReport(
      baseUrl,
      { from: '2025-02-23', to: '2025-02-24' },
      adminToken,
    )) as JsonReport;
    expect(narrow.entered).toBeLessThan(wide.entered);
    expect(await pageCounts(page)).toEqual(narrow.steps.map((s) => s.count));

    // Break the same view down by device with the segment picker.
    await page.getByLabel('Break down by').selectOption('device');
    await Promise.all([
      page.waitForURL(/breakdown=device/),
      page.getByRole('button', { name: 'Show' }).click(),
    ]);
    const byDevice = (await fetchReport(
      baseUrl,
      { from: '2025-02-23', to: '2025-02-24', breakdown: 'device' },
      adminToken,
    )) as JsonReport & {
      breakdown: {
        groups: Array<{ value: string | null; kind: string; steps: Array<{ count: number }> }>;
      };
    };
    expect(byDevice.breakdown.groups.length).toBeGreaterThan(1);
    for (const group of byDevice.breakdown.groups) {
      const row =
        group.value === null ? `tr[data-kind="${group.kind}"]` : `tr[data-group="${group.value}"]`;
      const cells = await page.locator(`${row} td`).allTextContents();
      expect(cells.slice(1, 1 + group.steps.length).map(Number)).toEqual(
        group.steps.map((s) => s.count),
      );
    }

    // The remaining controls: trend by week, top 2, a window override (answered from stored
    // events) and a filter on the largest device group; submitting keeps every one of them.
    const device = byDevice.breakdown.groups.find((g) => g.kind === 'value')!.value;
    await page.getByLabel('Trend by').selectOption('week');
    await page.getByLabel('Top values').fill('2');
    await page.getByLabel('Window', { exact: true }).fill('3d');
    await page.getByLabel('Add a filter').fill(`device:${device}`);
    await Promise.all([
      page.waitForURL(/window=3d/),
      page.getByRole('button', { name: 'Show' }).click(),
    ]);
    const url = new URL(page.url());
    expect(url.searchParams.get('interval')).toBe('week');
    expect(url.searchParams.get('top')).toBe('2');
    expect(url.searchParams.getAll('filter')).toContain(`device:${device}`);
    const view = new URLSearchParams({
      from: '2025-02-23',
      to: '2025-02-24',
      tz: 'UTC',
      breakdown: 'device',
      top: '2',
      interval: 'week',
      window: '3d',
      filter: `device:${device}`,
      format: 'json',
    });
    const filtered = (await (
      await fetch(`${reportUrl(baseUrl)}?${view}`, {
        headers: { authorization: `Bearer ${adminToken}`, 'cache-control': 'no-cache' },
      })
    ).json()) as JsonReport & {
      source: string;
      overTime: Array<{ bucket: string; entered: number }>;
      breakdown: { groups: Array<{ value: string | null }> };
    };
    expect(filtered.source).toBe('events');
    expect(filtered.entered).toBeLessThan(narrow.entered);
    expect(filtered.breakdown.groups.map((g) => g.value)).toEqual([device]);
    expect(await pageCounts(page)).toEqual(filtered.steps.map((s) => s.count));
    // The form holds the view it shows, the filter included.
    expect(await page.getByLabel('Filter 1').inputValue()).toBe(`device:${device}`);
    expect(await page.getByLabel('Trend by').inputValue()).toBe('week');
    expect(await page.getByLabel('Window', { exact: true }).inputValue()).toBe('3d');
    expect(await page.getByRole('columnheader', { name: 'Week of' }).count()).toBe(1);
    for (const bucket of filtered.overTime) {
      expect(await page.getByRole('cell', { name: bucket.bucket, exact: true }).count()).toBe(1);
    }

    mkdirSync(join(repoRoot, 'test-results'), { recursive: true });
    await page.setViewportSize({ width: 1100, height: 1400 });
    await page.screenshot({ path: join(repoRoot, 'test-results', 'report.png'), fullPage: true });
    await page.close();
  });

  it('has no serious or critical accessibility violations (axe-core)', async () => {
    const page = await browser.newPage();
    await page.goto(reportUrl(stack().baseUrl, { from: '2025-02-23', to: '2025-02-25' }));
    await page.addScriptTag({ content: AXE_SOURCE });
    const violations = await page.evaluate(async () => {
      const axe = (
        window as unknown as {
          axe: {
            run(): Promise<{ violations: Array<{ id: string; impact: string; nodes: unknown[] }> }>;
          };
        }
      ).axe;
      const result = await axe.run();
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
    });
    const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(serious).toEqual([]);
    await page.close();
  });

  it('reads fully without JavaScript and requests nothing outside goalstep', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const origins = new Set<string>();
    page.on('request', (request) => origins.add(new URL(request.url()).origin));
    await page.goto(reportUrl(stack().baseUrl, { from: '2025-02-23', to: '2025-02-25' }));
    expect((await pageCounts(page)).length).toBe(4);
    expect([...origins]).toEqual([stack().baseUrl]);
    await context.close();
  });
});
