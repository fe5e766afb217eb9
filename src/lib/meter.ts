/**
 * Usage meter for the cost benchmark (`npm run bench -- --only cost`, docs/BENCHMARKS.md): counts
 * what Cloudflare bills — Worker requests, Durable Object requests, D1 rows read and written (from
 * D1's own result `meta`, index updates included) and Durable Object SQLite rows — while the var
 * `METER` is "1". Off (the default, and in every deployment) the bindings are returned untouched.
 *
 * It observes, it never changes an answer: every call goes to the real binding and its result is
 * handed back as is. Declared here, in one place, like the fault wrapper of the tests.
 */

/** What one isolate has counted since its start or the last reset. */
export interface Tally {
  /** Tells isolates apart: locally the Worker and its objects may share one isolate. */
  isolate: string;
  workerRequests: number;
  objectRequests: number;
  /** Wall time from an object call to its answer, summed (an upper bound of billed duration). */
  objectMs: number;
  objectAlarms: number;
  d1Queries: number;
  d1RowsRead: number;
  d1RowsWritten: number;
  sqlRowsRead: number;
  sqlRowsWritten: number;
  /** D1 rows written by statement (`statementKey`), to tell where they go. */
  d1WrittenBySql: Record<string, number>;
}

// Random values are not allowed at global scope in workerd: the isolate id is drawn on first use.
const tally: Tally = {
  isolate: '',
  workerRequests: 0,
  objectRequests: 0,
  objectMs: 0,
  objectAlarms: 0,
  d1Queries: 0,
  d1RowsRead: 0,
  d1RowsWritten: 0,
  sqlRowsRead: 0,
  sqlRowsWritten: 0,
  d1WrittenBySql: {},
};

/** True when the meter is on for this environment. */
export const metering = (env: { METER?: string }) => env.METER === '1';

/** A copy of this isolate's counters. */
export function readTally(): Tally {
  if (!tally.isolate) tally.isolate = crypto.randomUUID();
  return { ...tally, d1WrittenBySql: { ...tally.d1WrittenBySql } };
}

/** Zeroes this isolate's counters. */
export function resetTally(): void {
  for (const key of Object.keys(tally) as Array<keyof Tally>) {
    if (key !== 'isolate' && key !== 'd1WrittenBySql') tally[key] = 0;
  }
  tally.d1WrittenBySql = {};
}

/** Counts one incoming Worker request or object alarm (no-op when the meter is off). */
export function countInvocation(env: { METER?: string }, kind: 'request' | 'alarm'): void {
  if (!metering(env)) return;
  if (kind === 'request') tally.workerRequests += 1;
  else tally.objectAlarms += 1;
}

/**
 * Counts a `setAlarm` as one row written to the object's storage: the alarm is kept there, and
 * this meter prices it like the rows around it (no-op when the meter is off).
 */
export function countAlarmSet(env: { METER?: string }): void {
  if (metering(env)) tally.sqlRowsWritten += 1;
}

/** Adds an alarm's wall time to the objects' summed call time (no-op when the meter is off). */
export function countObjectMs(env: { METER?: string }, ms: number): void {
  if (metering(env)) tally.objectMs += ms;
}

type Meta = { rows_read?: number; rows_written?: number } | undefined;

/** The SQL each metered statement was prepared from. */
const sqlOf = new WeakMap<object, string>();

/**
 * A statement's name in `d1WrittenBySql`: its SQL with runs of white space as one space, cut at
 * 100 characters; a longer one gets a hash of the whole text too, since statements built from
 * the same parts (the fold's, a rebuild's and an erasure's rollup writes) share their start.
 */
export function statementKey(sql: string): string {
  const text = sql.replace(/\s+/g, ' ').trim();
  if (text.length <= 100) return text;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  }
  return `${text.slice(0, 100)}… #${hash.toString(16).padStart(8, '0')}`;
}

function addMeta(meta: Meta, sql: string | undefined): void {
  tally.d1Queries += 1;
  tally.d1RowsRead += meta?.rows_read ?? 0;
  const written = meta?.rows_written ?? 0;
  tally.d1RowsWritten += written;
  if (written === 0) return;
  const key = statementKey(sql ?? '?');
  tally.d1WrittenBySql[key] = (tally.d1WrittenBySql[key] ?? 0) + written;
}

function meterStatement(statement: D1PreparedStatement, sql: string): D1PreparedStatement {
  const metered = new Proxy(statement, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function') return value;
      if (key === 'bind') {
        return (...args: unknown[]) => meterStatement(target.bind(...args), sql);
      }
      if (key === 'run' || key === 'all') {
        return async (...args: unknown[]) => {
          const result = (await Reflect.apply(value, target, args)) as D1Result;
          addMeta(result.meta, sql);
          return result;
        };
      }
      if (key === 'first' || key === 'raw') {
        // No meta on these: counted as one query reading the rows it returned (a lower bound).
        return async (...args: unknown[]) => {
          const result = (await Reflect.apply(value, target, args)) as unknown;
          tally.d1Queries += 1;
          tally.d1RowsRead += Array.isArray(result) ? result.length : result == null ? 0 : 1;
          return result;
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  sqlOf.set(metered, sql);
  return metered;
}

function meterD1(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (key === 'prepare') return (sql: string) => meterStatement(target.prepare(sql), sql);
      if (key === 'batch') {
        return async (statements: D1PreparedStatement[]) => {
          const results = await target.batch(statements);
          results.forEach((result, i) => addMeta(result.meta, sqlOf.get(statements[i] as object)));
          return results;
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Wraps a stub so each method call counts as one object request, with its wall time. */
function meterStub<T extends object>(stub: T): T {
  return new Proxy(stub, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function' || key === 'then') return value;
      return (...args: unknown[]) => {
        tally.objectRequests += 1;
        const started = Date.now();
        const result = Reflect.apply(value, target, args) as unknown;
        // An RPC call answers with a thenable (callable, for pipelining), not a Promise.
        const then = (result as { then?: unknown } | null)?.then;
        if (typeof then === 'function') {
          return Promise.resolve(result as PromiseLike<unknown>).finally(() => {
            tally.objectMs += Date.now() - started;
          });
        }
        return result;
      };
    },
  });
}

function meterNamespace<T extends DurableObjectNamespace>(namespace: T): T {
  return new Proxy(namespace, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function') return value;
      if (key === 'get' || key === 'getByName') {
        return (...args: unknown[]) => meterStub(Reflect.apply(value, target, args) as object);
      }
      return value.bind(target);
    },
  });
}

const isNamespace = (value: unknown): value is DurableObjectNamespace =>
  typeof value === 'object' && value !== null && 'idFromName' in value;
const isD1 = (value: unknown): value is D1Database =>
  typeof value === 'object' && value !== null && 'prepare' in value && 'batch' in value;

/** The environment with D1 and Durable Object bindings metered, when the meter is on. */
export function meterEnv<E extends { METER?: string }>(env: E): E {
  if (!metering(env)) return env;
  const wrapped: Record<string, unknown> = { ...env };
  for (const [key, value] of Object.entries(env)) {
    if (isD1(value)) wrapped[key] = meterD1(value);
    else if (isNamespace(value)) wrapped[key] = meterNamespace(value);
  }
  return wrapped as E;
}

/** An object's SQLite handle with rows read and written counted, when the meter is on. */
export function meterSql(sql: SqlStorage, env: { METER?: string }): SqlStorage {
  if (!metering(env)) return sql;
  return new Proxy(sql, {
    get(target, key) {
      const value = Reflect.get(target, key, target) as unknown;
      if (key !== 'exec') return typeof value === 'function' ? value.bind(target) : value;
      return (query: string, ...bindings: SqlStorageValue[]) => {
        const cursor = target.exec(query, ...bindings);
        // Counts accrue as the cursor is read; take them at once for writes, and again when the
        // caller reads the rows.
        let seenRead = cursor.rowsRead;
        let seenWritten = cursor.rowsWritten;
        tally.sqlRowsRead += seenRead;
        tally.sqlRowsWritten += seenWritten;
        const settle = () => {
          tally.sqlRowsRead += cursor.rowsRead - seenRead;
          tally.sqlRowsWritten += cursor.rowsWritten - seenWritten;
          seenRead = cursor.rowsRead;
          seenWritten = cursor.rowsWritten;
        };
        const metered: SqlStorageCursor<Record<string, SqlStorageValue>> = new Proxy(cursor, {
          get(inner, name) {
            const member = Reflect.get(inner, name, inner) as unknown;
            if (typeof member !== 'function') return member;
            if (name === Symbol.iterator) {
              return function* rows() {
                for (const row of inner) {
                  settle();
                  yield row;
                }
                settle();
              };
            }
            return (...args: unknown[]) => {
              const out = Reflect.apply(member, inner, args) as unknown;
              settle();
              return out;
            };
          },
        });
        return metered;
      };
    },
  });
}
