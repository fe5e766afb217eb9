/**
 * The cost benchmark's usage meter (src/lib/meter.ts): it counts what D1 and an object's SQLite
 * report, passes answers through unchanged, and is unreachable unless `METER` is "1".
 */
import { env, runInDurableObject, SELF } from 'cloudflare:test';
import { meterEnv, meterSql, readTally, resetTally } from '../../src/lib/meter';

describe('usage meter', () => {
  it('is off by default: the bindings are the real ones and the route is a 404', async () => {
    expect(meterEnv(env).DB).toBe(env.DB);
    const response = await SELF.fetch('https://goalstep.test/admin/meter?site=demo', {
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    });
    expect(response.status).toBe(404);
  });

  it('counts D1 rows written with index updates, and rows read, as D1 reports them', async () => {
    const db = meterEnv({ ...env, METER: '1' }).DB;
    await env.DB.exec('CREATE TABLE meter_probe (a INTEGER PRIMARY KEY, b TEXT, c TEXT)');
    await env.DB.exec('CREATE INDEX meter_probe_b ON meter_probe (b)');
    await env.DB.exec('CREATE INDEX meter_probe_c ON meter_probe (c)');
    resetTally();
    await db
      .prepare('INSERT INTO meter_probe (b, c) VALUES (?, ?), (?, ?)')
      .bind('1', '2', '3', '4')
      .run();
    // Two rows, each also written into two indexes: 2 × 3 rows written.
    expect(readTally()).toMatchObject({ d1Queries: 1, d1RowsWritten: 6 });
    const { results } = await db.prepare('SELECT b FROM meter_probe ORDER BY a').all();
    expect(results).toEqual([{ b: '1' }, { b: '3' }]);
    expect(readTally()).toMatchObject({ d1Queries: 2, d1RowsRead: 2 });
    const [first] = await db.batch([db.prepare('SELECT c FROM meter_probe WHERE a = 1')]);
    expect(first?.results).toEqual([{ c: '2' }]);
    expect(readTally().d1Queries).toBe(3);
    // Rows written by statement, whether run alone or in a batch; reads are not listed.
    await db.batch([db.prepare('INSERT INTO meter_probe (b, c) VALUES (?, ?)').bind('5', '6')]);
    expect(readTally().d1WrittenBySql).toEqual({
      'INSERT INTO meter_probe (b, c) VALUES (?, ?), (?, ?)': 6,
      'INSERT INTO meter_probe (b, c) VALUES (?, ?)': 3,
    });
    resetTally();
    expect(readTally().d1WrittenBySql).toEqual({});
  });

  it("counts an object's SQLite rows, iterated or not", async () => {
    const stub = env.SITE_STATE.get(env.SITE_STATE.idFromName('meter-probe'));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = meterSql(state.storage.sql, { METER: '1' });
      sql.exec('CREATE TABLE probe (k INTEGER PRIMARY KEY, v TEXT)');
      resetTally();
      sql.exec('INSERT INTO probe (v) VALUES (?), (?), (?)', 'x', 'y', 'z');
      expect(readTally().sqlRowsWritten).toBe(3);
      const seen: string[] = [];
      for (const row of sql.exec<{ v: string }>('SELECT v FROM probe ORDER BY k')) seen.push(row.v);
      expect(seen).toEqual(['x', 'y', 'z']);
      expect(readTally().sqlRowsRead).toBeGreaterThanOrEqual(3);
    });
  });
});
