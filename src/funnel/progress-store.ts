/**
 * Writes people's attempts (progress rows) to D1. A person's rows for a goal version are
 * replaced whole, so a write always reflects the person's full, recomputed history; the rollups
 * move with them in the same batch.
 */
import { attemptFacts, type AttemptFacts } from './attempt-facts';
import type { Goal } from './definition';
import type { Attempt } from './engine';
import {
  ATTEMPT_FIELDS,
  foldLogStatements,
  replaceRowsStatements,
  type AttemptJsonRow,
} from './rollups';
import type { Segment } from './segment';
import { wellFormed } from '../ingest/guards';

export interface PersonProgress {
  personId: string;
  /** Attempts per goal version (`goalKey`); absent means no attempts for the person. */
  attempts: Map<string, Array<Attempt & { segment: Segment }>>;
}

/** The key of one goal version in `PersonProgress.attempts`. */
export const goalKey = (goal: Pick<Goal, 'id' | 'version'>) => `${goal.id}#${goal.version}`;

/**
 * Entry properties and traits for breakdowns are capped at this many characters of JSON: one odd
 * event cannot bloat a row. The shortest values are kept first, so what is left out is the
 * longest (a long text), never the short values beside it; kept values stay in their order.
 */
export const ENTRY_PROPS_MAX = 2000;

const STEP_COLUMNS = ['t2', 't3', 't4', 't5', 't6', 't7', 't8', 't9', 't10'] as const;

/** An attempt's columns of `attempts`, apart from its keys: what both report paths read. */
export type AttemptRow = Record<string, number | string | null>;

/**
 * A segment value as its column holds it. The segment of an event taken before values were cut
 * on whole characters (src/funnel/segment.ts) may end in half an emoji, kept with the event: that
 * half is dropped, as the cut does now, so old and new events share one value, and the row reads
 * back as written (D1 would store the half as invalid UTF-8).
 */
function storedSegment(value: string | null): string | null {
  return value === null ? null : wellFormed(value.replace(/[\uD800-\uDBFF]$/, ''));
}

/** Shapes an attempt as its `attempts` row (minus site, goal, version and person). */
export function attemptRow(attempt: Attempt & { segment: Segment }): AttemptRow {
  const s = attempt.segment;
  // Breakdown keys as the report names them: `property:<name>` and `trait:<name>`, scalars only.
  const candidates: Array<{ name: string; value: string | number | boolean; chars: number }> = [];
  const scalars = (prefix: string, bag: Record<string, unknown> | null) => {
    for (const [key, value] of Object.entries(bag ?? {})) {
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        continue;
      }
      const name = `${prefix}:${key}`;
      // Its share of the JSON: `"name":value` and a comma.
      const chars = JSON.stringify(name).length + JSON.stringify(value).length + 2;
      candidates.push({ name, value, chars });
    }
  };
  scalars('property', attempt.entry.type === 'identify' ? null : attempt.entry.properties);
  scalars('trait', attempt.entryTraits);
  // The shortest values first (ties in order) while the JSON fits. It starts at 1: the two
  // braces, less the comma that the last entry does not have. A long value is the one left out,
  // never the short ones beside it.
  const kept = new Set<number>();
  let chars = 1;
  const bySize = candidates
    .map((_, i) => i)
    .sort((a, b) => {
      const size = (candidates[a]?.chars ?? 0) - (candidates[b]?.chars ?? 0);
      return size || a - b;
    });
  for (const i of bySize) {
    const added = candidates[i]?.chars ?? 0;
    if (chars + added > ENTRY_PROPS_MAX) break;
    kept.add(i);
    chars += added;
  }
  const entry: Record<string, string | number | boolean> = {};
  candidates.forEach((c, i) => {
    if (kept.has(i)) entry[c.name] = c.value;
  });
  const json = JSON.stringify(entry);
  const entryProps = json === '{}' ? null : json;
  const row: AttemptRow = { t1: attempt.times[0] ?? null, reached: attempt.reached };
  STEP_COLUMNS.forEach((column, i) => {
    row[column] = attempt.times[i + 1] ?? null;
  });
  Object.assign(row, {
    utm_source: storedSegment(s.utmSource),
    utm_medium: storedSegment(s.utmMedium),
    utm_campaign: storedSegment(s.utmCampaign),
    referrer_domain: storedSegment(s.referrerDomain),
    device: storedSegment(s.device),
    browser: storedSegment(s.browser),
    os: storedSegment(s.os),
    country: storedSegment(s.country),
    step_values: attempt.values.some((v) => v !== null)
      ? JSON.stringify(attempt.values.map((v) => (v ? [v.value, v.order, v.messageId] : null)))
      : null,
    entry_props: entryProps,
  });
  return row;
}

/** Rows (and people) per D1 batch at most. */
const ROWS_PER_BATCH = 500;
/**
 * Characters of row values per D1 batch at most: D1 takes values of up to 2 MB, and the rows go
 * to the batch as one JSON parameter. One person's rows on one version are never split: they
 * are replaced together.
 */
const CHARS_PER_BATCH = 600_000;

/** About how many characters a row takes as JSON. */
function rowChars(row: AttemptJsonRow): number {
  let chars = 2 * row.length;
  for (const value of row) chars += typeof value === 'string' ? value.length + 2 : 14;
  return chars;
}

/** What a progress write did: log entries written, and whether it folded the log. */
export interface WriteOutcome {
  logged: number;
  folded: boolean;
}

/**
 * Replaces the progress rows of the given people for the given goal versions, and logs the
 * difference for the rollups in the same batch (src/funnel/rollups.ts). Rows that did not change
 * are not written again, so a person whose attempts are unchanged costs reads only. With `fold`,
 * the last batch also folds the site's rollup log into the rollups (or, if the last chunk went
 * out already, a batch of its own does).
 */
export async function writeProgress(
  db: D1Database,
  siteId: string,
  goals: readonly Goal[],
  people: readonly PersonProgress[],
  options: { fold?: boolean } = {},
): Promise<WriteOutcome> {
  let scope: Array<[string, number, string]> = [];
  let rows: AttemptJsonRow[] = [];
  let chars = 0;
  let logged = 0;
  let batches = 0;
  const send = async (last = false) => {
    const fold = last && options.fold === true;
    if (scope.length === 0) {
      if (fold && batches > 0) await db.batch(foldLogStatements(db, siteId));
      return;
    }
    const statements = replaceRowsStatements(db, siteId, scope, rows);
    if (fold) statements.push(...foldLogStatements(db, siteId));
    const [log] = await db.batch<{ entries: number }>(statements);
    logged += log?.results[0]?.entries ?? 0;
    batches += 1;
    scope = [];
    rows = [];
    chars = 0;
  };
  for (const person of people) {
    for (const goal of goals) {
      const own = progressRows(goal, person.personId, person.attempts.get(goalKey(goal)) ?? []);
      const ownChars = own.reduce((sum, row) => sum + rowChars(row), 0);
      if (scope.length > 0 && chars + ownChars > CHARS_PER_BATCH) await send();
      scope.push([goal.id, goal.version, person.personId]);
      rows.push(...own);
      chars += ownChars;
    }
    if (rows.length >= ROWS_PER_BATCH || scope.length >= ROWS_PER_BATCH) await send();
  }
  // A write of nobody (nothing to send) folds nothing: there is no write to fold with.
  if (scope.length === 0 && batches === 0) return { logged: 0, folded: false };
  await send(true);
  return { logged, folded: options.fold === true };
}

/** One person's attempts on one goal version as rows for `replaceRowsStatements`. */
export function progressRows(
  goal: Goal,
  personId: string,
  attempts: ReadonlyArray<Attempt & { segment: Segment }>,
): AttemptJsonRow[] {
  const facts = attemptFacts(goal, attempts);
  return attempts.map((attempt, i) => {
    const f = facts[i] as AttemptFacts;
    // attemptRow's object is new: filled in place rather than copied.
    const row: AttemptRow = Object.assign(attemptRow(attempt), {
      goal_id: goal.id,
      version: goal.version,
      person_id: personId,
      prev_ge: f.prevGe,
      next_gt: f.nextGt,
      close_at: f.closesAt,
      open_mask: f.openMask,
      progress_mask: f.progressMask,
      done_mask: f.doneMask,
      // No bucket at all (an attempt at its first step) is stored as NULL: the rollup writer
      // then skips the row for the time-between-steps histograms.
      duration_buckets: f.durationBuckets.some((b) => b !== null)
        ? JSON.stringify(f.durationBuckets)
        : null,
    });
    return ATTEMPT_FIELDS.map((field) => row[field] ?? null);
  });
}
