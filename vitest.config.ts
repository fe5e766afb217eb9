/**
 * Two test projects: `workers` runs inside workerd through the Cloudflare plugin (real local D1
 * and Durable Objects from wrangler.toml); `e2e` runs in Node against real `wrangler dev` stacks.
 */
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { buildTracker } from './scripts/build-tracker.mjs';

// Read at config time (Node): the Workers runtime has no file system to read them from.
const migrations = await readD1Migrations('migrations');
// The Worker imports the bundled browser tracker, which is generated, not committed.
await buildTracker({ quiet: true });

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                ADMIN_TOKEN: 'test-admin-token-0000000001',
                // Alert receivers in tests listen on loopback (docs/ALERTS.md, Delivery).
                ALERTS_ALLOW_PRIVATE_HOSTS: '1',
                TEST_MIGRATIONS: migrations,
                // The site object's write pause (default 1 s): a quarter keeps the suite quick;
                // test/workers/handover.test.ts reads the pause in force, whatever it is.
                FLUSH_PAUSE_MS: '250',
                // Property-test knobs (test/workers/identity-property.test.ts), empty by default.
                FC_RUNS: process.env.FC_RUNS ?? '',
                FC_SEED: process.env.FC_SEED ?? '',
              },
            },
          }),
        ],
        test: {
          name: 'workers',
          globals: true,
          include: ['test/workers/**/*.test.ts'],
          setupFiles: ['test/workers/apply-migrations.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          environment: 'node',
          globals: true,
          include: ['test/e2e/**/*.test.ts'],
          // Each file starts its own wrangler dev; running them one at a time keeps the machine
          // (and the timing of the stacks) predictable.
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
