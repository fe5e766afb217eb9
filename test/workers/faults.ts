/**
 * The one fault-injecting wrapper of the suite: the real D1 and SiteState bindings, with chosen
 * calls made to fail. Everything else in the suite uses the bindings as they are.
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import type { Env } from '../../src/env';
import worker from '../../src/index';

export interface FaultPlan {
  /** The next N `DB.batch()` calls pass before the failures below apply. */
  passBatches?: number;
  /** The next N `DB.batch()` calls fail before anything is written. */
  failBatchesBefore?: number;
  /** The next N `DB.batch()` calls write, then fail as a timeout would (the write stands). */
  failBatchesAfter?: number;
  /**
   * Runs before each `DB.batch()` call with its number (1, 2, …): another writer's commit
   * landing between two transactions of the caller (a race, made certain).
   */
  beforeBatch?: (n: number) => Promise<unknown>;
  /**
   * Every call into the site object fails (`receive`, the ingest's hand-over after the D1
   * write, and `apply`, the reconciler's).
   */
  failObject?: boolean;
}

/** Calls the real binding's method with the binding itself as `this`. */
function passThrough<T extends object>(target: T, prop: string | symbol): unknown {
  const value: unknown = Reflect.get(target, prop, target);
  return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
}

export function faultyDb(db: D1Database, plan: FaultPlan): D1Database {
  let batchesSeen = 0;
  return new Proxy(db, {
    get(target, prop) {
      if (prop !== 'batch') return passThrough(target, prop);
      return async (statements: D1PreparedStatement[]) => {
        batchesSeen += 1;
        await plan.beforeBatch?.(batchesSeen);
        if ((plan.passBatches ?? 0) > 0) {
          plan.passBatches = (plan.passBatches ?? 0) - 1;
          return target.batch(statements);
        }
        if ((plan.failBatchesBefore ?? 0) > 0) {
          plan.failBatchesBefore = (plan.failBatchesBefore ?? 0) - 1;
          throw new Error('D1_ERROR: injected failure before the write');
        }
        const results = await target.batch(statements);
        if ((plan.failBatchesAfter ?? 0) > 0) {
          plan.failBatchesAfter = (plan.failBatchesAfter ?? 0) - 1;
          throw new Error('D1_ERROR: injected timeout after the write committed');
        }
        return results;
      };
    },
  });
}

function faultySiteState(namespace: Env['SITE_STATE'], plan: FaultPlan): Env['SITE_STATE'] {
  return new Proxy(namespace, {
    get(target, prop) {
      if (prop !== 'get') return passThrough(target, prop);
      return (id: DurableObjectId) => {
        const stub = target.get(id);
        if (!plan.failObject) return stub;
        // An RPC stub answers any property as a remote method, so it is not wrapped: the
        // failing stand-in offers the two methods the ingest path and the reconciler call.
        const fail = () => Promise.reject(new Error('injected SiteState failure'));
        return { receive: fail, apply: fail };
      };
    },
  });
}

/**
 * Sends a request through the real Worker (src/index.ts) with the faulty bindings and waits for
 * the work it left running after the response (`waitUntil`).
 */
export async function fetchWithFaults(request: Request, plan: FaultPlan): Promise<Response> {
  const faultyEnv: Env = {
    ...env,
    DB: faultyDb(env.DB, plan),
    SITE_STATE: faultySiteState(env.SITE_STATE, plan),
  };
  const ctx = createExecutionContext();
  const response = await worker.fetch(request, faultyEnv, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}
