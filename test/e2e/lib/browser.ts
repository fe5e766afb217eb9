/** The shared Chromium launcher (scripts/lib/browser.mjs), typed for the tests. */
import type { Browser } from 'playwright-core';
import * as shared from '../../../scripts/lib/browser.mjs';

export const CHROMIUM_PATH: string = shared.CHROMIUM_PATH;
export const DESKTOP_USER_AGENT: string = shared.DESKTOP_USER_AGENT;

/** Launches a fresh headless Chromium. */
export const launchBrowser = (): Promise<Browser> => shared.launchBrowser();
