/** Test-only bindings, added by vitest.config.ts on top of the app's (src/env.ts). */
/// <reference types="vitest/globals" />
import type { D1Migration } from 'cloudflare:test';

declare global {
  namespace Cloudflare {
    interface Env {
      /** The migrations of migrations/, read at config time and applied by apply-migrations.ts. */
      TEST_MIGRATIONS: D1Migration[];
      /** Property-test run count and seed, from the shell (empty: the fixed CI defaults). */
      FC_RUNS: string;
      FC_SEED: string;
    }
  }
}
