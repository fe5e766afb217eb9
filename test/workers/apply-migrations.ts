/** Applies the D1 migrations (read in vitest.config.ts) before the tests of each file. */
import { applyD1Migrations, env } from 'cloudflare:test';

// Idempotent: applyD1Migrations records what it applied and skips it the next time.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
