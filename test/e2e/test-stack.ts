/**
 * One real `wrangler dev` stack per test file, on a free port with its own throw-away state,
 * started before the file's tests and stopped after them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startStack } from '../../scripts/lib/stack.mjs';

export interface TestStack {
  baseUrl: string;
  adminToken: string;
}

/**
 * Registers the stack's hooks; the returned getter is valid inside tests. `vars` adds Worker
 * variables (for example the declared clock override `GOALSTEP_NOW`).
 */
export function useTestStack(name: string, vars: Record<string, string> = {}): () => TestStack {
  const adminToken = `adm_e2e_${name}_token_0000000001`;
  let stack: { baseUrl: string; stop(): Promise<void> } | undefined;
  let persistTo = '';

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), `goalstep-e2e-${name}-`));
    const port = await freePort();
    stack = await startStack({
      port,
      persistTo,
      vars: { ...vars, ADMIN_TOKEN: adminToken },
    });
  });

  afterAll(async () => {
    await stack?.stop();
    if (persistTo) rmSync(persistTo, { recursive: true, force: true });
  });

  return () => {
    if (!stack) throw new Error('the test stack has not started');
    return { baseUrl: stack.baseUrl, adminToken };
  };
}
