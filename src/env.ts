/** The Worker's bindings, typed once for the app, the Durable Object and the tests. */
import type { SiteState } from './identity/site-state-do';
import type { RateLimiter } from './ingest/rate-limit-do';

export interface Env {
  DB: D1Database;
  SITE_STATE: DurableObjectNamespace<SiteState>;
  /** Per-site beacon request counters (src/ingest/rate-limit-do.ts). */
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  /** Bootstrap admin token (a wrangler secret; `.dev.vars` locally). */
  ADMIN_TOKEN?: string;
  /**
   * People in a report's range from which rollups answer it (default 50000,
   * src/report/rollup-report.ts); below it the exact per-person path does.
   */
  ROLLUP_MIN_PEOPLE?: string;
  /**
   * The one declared clock override, for tests and demos only: an ISO instant that shells use as
   * "now" instead of the real clock. Unset in every real deployment.
   */
  GOALSTEP_NOW?: string;
  /**
   * The site object's pause between taking a request's events and writing their progress, in
   * ms (default 1000, src/identity/site-state-do.ts): longer bills fewer rows per event on a
   * quiet site, shorter shows events in reports sooner.
   */
  FLUSH_PAUSE_MS?: string;
  /** "1" turns on the usage meter of the cost benchmark (src/lib/meter.ts); unset elsewhere. */
  METER?: string;
  /**
   * "1" leaves every stored batch to the cron's reconciler instead of handing it to the site
   * object after the response: a load-shedding switch, and how the benchmark measures the beacon
   * path alone. Unset by default.
   */
  DEFER_APPLY?: string;
  /**
   * "1" lets alert channels point at private and loopback hosts (local receivers in development
   * and tests); unset in deployments, where only public destinations are accepted and sent to.
   */
  ALERTS_ALLOW_PRIVATE_HOSTS?: string;
}

type GoalstepEnv = Env;

declare global {
  // Lets `cloudflare:test`'s `env` carry the same bindings.
  namespace Cloudflare {
    interface Env extends GoalstepEnv {}
  }
}
