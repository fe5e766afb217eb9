/**
 * Debian's Chromium driven by playwright-core, started the way this machine needs: headless, no
 * sandbox (root), and nothing that reaches out to the network on its own.
 */
import { chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * A desktop Chrome's user agent instead of "HeadlessChrome": browser tests are about goalstep's
 * pages and tracker, not about its bot rules. Set on the command line as well as per context,
 * because beacons that outlive their page are sent by the browser without the page's override.
 */
export const DESKTOP_USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/156.0.0.0 Safari/537.36';

/** Launches a fresh headless Chromium. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      `--user-agent=${DESKTOP_USER_AGENT}`,
    ],
  });
}
