/**
 * The report's D1 query: per person, the best attempt that starts in the range (furthest, then
 * earliest; docs/METRICS.md), then counts and medians per step. It reads progress rows only, so
 * its cost grows with people in range, not with their events.
 */

export interface FunnelCounts {
  /** `counts[k]`: people whose best attempt reached step k+1. */
  counts: number[];
  /** `medianMs[k]`: continuous median of t(k+1) - t(k) in ms; index 0 is always null. */
  medianMs: Array<number | null>;
}

const STEP_TIME = (k: number) => `t${k}`;

/**
 * Builds the best-attempt subquery. SQLite (and so D1) returns the bare columns of the row that
 * holds the single MAX() of a group; the score ranks by steps reached, then by earliest start.
 */
function bestAttemptsSql(steps: number): string {
  const times = Array.from({ length: steps }, (_, i) => STEP_TIME(i + 1)).join(', ');
  return `SELECT reached, ${times}, MAX(reached * 100000000000000000 - t1) AS score
    FROM attempts
    WHERE site_id = ?1 AND goal_id = ?2 AND version = ?3 AND t1 >= ?4 AND t1 < ?5
    GROUP BY person_id`;
}

/** Runs the funnel aggregate for one goal version and entry range. */
export async function queryFunnel(
  db: D1Database,
  input: { siteId: string; goalId: string; version: number; steps: number; from: number; to: number },
): Promise<FunnelCounts> {
  const { steps } = input;
  const countColumns = Array.from({ length: steps }, (_, i) => `SUM(reached >= ${i + 1}) AS c${i + 1}`);
  const durations = Array.from(
    { length: steps - 1 },
    (_, i) =>
      `SELECT ${i + 2} AS k, ${STEP_TIME(i + 2)} - ${STEP_TIME(i + 1)} AS d FROM best WHERE reached >= ${i + 2}`,
  );
  const params = [input.siteId, input.goalId, input.version, input.from, input.to];

  const countsSql = `WITH best AS (${bestAttemptsSql(steps)}) SELECT ${countColumns.join(', ')} FROM best`;
  const statements = [db.prepare(countsSql).bind(...params)];
  if (durations.length > 0) {
    statements.push(
      db
        .prepare(
          `WITH best AS (${bestAttemptsSql(steps)}),
           durations AS (${durations.join(' UNION ALL ')}),
           ranked AS (SELECT k, d, ROW_NUMBER() OVER (PARTITION BY k ORDER BY d) AS rn,
                             COUNT(*) OVER (PARTITION BY k) AS n FROM durations)
           SELECT k, AVG(d) AS median FROM ranked
           WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY k`,
        )
        .bind(...params),
    );
  }
  const [countResult, medianResult] = await db.batch<Record<string, number | null>>(statements);

  const countRow = countResult?.results[0] ?? {};
  const counts = Array.from({ length: steps }, (_, i) => Number(countRow[`c${i + 1}`] ?? 0));
  const medianMs: Array<number | null> = Array.from({ length: steps }, () => null);
  for (const row of medianResult?.results ?? []) {
    medianMs[Number(row.k) - 1] = row.median === null ? null : Number(row.median);
  }
  return { counts, medianMs };
}
