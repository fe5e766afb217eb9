/**
 * `npm run alerts:backtest` when no server answers: it names the URL that failed, why, and what
 * to do, and exits 1 (no stack is started: the point is that nothing listens).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { freePort, repoRoot } from '../../scripts/lib/stack.mjs';

/** Runs the CLI with `args`; resolves with its exit code and output. */
function backtestCli(args: string[]) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    execFile(
      join(repoRoot, 'node_modules', '.bin', 'node'),
      [join(repoRoot, 'scripts', 'alerts-backtest.mjs'), ...args],
      { env: { ...process.env, GOALSTEP_ADMIN_TOKEN: 'any-token' } },
      (error, stdout, stderr) => done({ code: error ? (error.code as number) : 0, stdout, stderr }),
    );
  });
}

describe('alerts backtest with a wrong argument', () => {
  const cases: Array<[string, string[], string]> = [
    [
      'a --from that is no date',
      ['--from', 'yesterday', '--to', '2025-03-02'],
      '--from "yesterday"',
    ],
    ['a --to before --from', ['--from', '2025-03-02', '--to', '2025-02-23'], 'must be after'],
    [
      'a --url that is no URL',
      ['--from', '2025-02-23', '--to', '2025-03-02', '--url', 'x'],
      '--url',
    ],
    ['an unknown option', ['--from', '2025-02-23', '--to', '2025-03-02', '--form', 'x'], '--form'],
  ];
  for (const [what, args, named] of cases) {
    it(`names ${what} and exits 2 without blaming the server`, async () => {
      const port = await freePort(12_000, 500);

      // A free port: were the server asked, it would answer "cannot reach".
      const url = args.includes('--url') ? [] : ['--url', `http://127.0.0.1:${port}`];
      const result = await backtestCli([...args, ...url]);

      expect(result.code).toBe(2);
      expect(result.stderr).toContain(named);
      expect(result.stderr).toContain('usage:');
      expect(result.stderr).not.toContain('cannot reach');
    });
  }
});

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
