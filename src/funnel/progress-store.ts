/**
 * Writes people's attempts (progress rows) to D1. A person's rows for a goal version are
 * replaced whole, so a write always reflects the person's full, recomputed history.
 */
import type { Goal } from './definition';
import type { Attempt } from './engine';
import type { Segment } from './segment';

export interface PersonProgress {
  personId: string;
  /** Attempts per goal id; a goal absent here has no attempts for the person. */
  attempts: Map<string, Array<Attempt & { segment: Segment }>>;
}

/** D1 caps a batch's statements; chunks keep each call well inside it. */
const STATEMENTS_PER_BATCH = 200;

const STEP_COLUMNS = ['t2', 't3', 't4', 't5', 't6', 't7', 't8', 't9', 't10'] as const;

/** Replaces the progress rows of the given people for the given goal versions. */
export async function writeProgress(
  db: D1Database,
  siteId: string,
  goals: readonly Goal[],
  people: readonly PersonProgress[],
): Promise<void> {
  const remove = db.prepare(
    'DELETE FROM attempts WHERE site_id = ? AND goal_id = ? AND version = ? AND person_id = ?',
  );
  // One row per statement: 30 bound values, under D1's limit of 100 per statement.
  const insert = db.prepare(
    `INSERT INTO attempts (site_id, goal_id, version, person_id, t1, reached,
       ${STEP_COLUMNS.join(', ')}, utm_source, utm_medium, utm_campaign, referrer_domain,
       device, browser, os, country)
     VALUES (${Array.from({ length: 23 }, () => '?').join(', ')})`,
  );

  const statements: D1PreparedStatement[] = [];
  for (const person of people) {
    for (const goal of goals) {
      statements.push(remove.bind(siteId, goal.id, goal.version, person.personId));
      for (const attempt of person.attempts.get(goal.id) ?? []) {
        const later = STEP_COLUMNS.map((_, i) => attempt.times[i + 1] ?? null);
        const s = attempt.segment;
        statements.push(
          insert.bind(
            siteId,
            goal.id,
            goal.version,
            person.personId,
            attempt.times[0],
            attempt.times.length,
            ...later,
            s.utmSource,
            s.utmMedium,
            s.utmCampaign,
            s.referrerDomain,
            s.device,
            s.browser,
            s.os,
            s.country,
          ),
        );
      }
    }
  }
  for (let i = 0; i < statements.length; i += STATEMENTS_PER_BATCH) {
    await db.batch(statements.slice(i, i + STATEMENTS_PER_BATCH));
  }
}
