/** The workers project itself works: the real Worker answers and D1 holds the migrated schema. */
import { env, SELF } from 'cloudflare:test';

describe('workers test setup', () => {
  it('serves /healthz through the real Worker', async () => {
    const response = await SELF.fetch('https://goalstep.test/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
  });

  it('uses the test admin token, not the one in .dev.vars', () => {
    expect(env.ADMIN_TOKEN).toBe('test-admin-token-0000000001');
  });

  it('has the migrated D1 tables', async () => {
    const { results } = await env.DB.prepare(
      "SELECT type, name FROM sqlite_master WHERE name IN ('events', 'event_packs') ORDER BY name",
    ).all<{ type: string; name: string }>();
    expect(results).toEqual([
      { type: 'table', name: 'event_packs' },
      { type: 'view', name: 'events' },
    ]);
  });
});
