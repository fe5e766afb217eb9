/** Types of scripts/build-tracker.mjs for the TypeScript files that import it. */
export declare const GZIP_BUDGET_BYTES: number;
/** Bundles the tracker into src/tracker/generated/; rejects when over the gzip budget. */
export declare function buildTracker(options?: {
  quiet?: boolean;
}): Promise<{ bytes: number; gzipBytes: number; hash: string }>;
