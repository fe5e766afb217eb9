/**
 * `npm run alerts:backtest` when no server answers: it names the URL that failed, why, and what
 * to do, and exits 1 (no stack is started: the point is that nothing listens).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { freePort, repoRoot } from '../../scripts/lib/stack.mjs';

describe('alerts backtest without a server', () => {
  it('says which URL it could not reach and how to start one, and exits 1', async () => {
    const port = await freePort(12_000, 500);
    const base = `http://127.0.0.1:${port}`;

    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (done) => {
        execFile(
          join(repoRoot, 'node_modules', '.bin', 'node'),
          [
            join(repoRoot, 'scripts', 'alerts-backtest.mjs'),
            ...['--from', '2025-02-23', '--to', '2025-03-02', '--site', 'demo', '--url', base],
          ],
          { env: { ...process.env, GOALSTEP_ADMIN_TOKEN: 'any-token' } },
          (error, stdout, stderr) =>
            done({ code: error ? (error.code as number) : 0, stdout, stderr }),
        );
      },
    );

    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`POST ${base}/admin/sites/demo/alerts/backtest failed`);
    expect(result.stderr).toContain('cannot reach the server (ECONNREFUSED)');
    expect(result.stderr).toContain('npm start');
    expect(result.stderr).toContain('--url');
  });
});
