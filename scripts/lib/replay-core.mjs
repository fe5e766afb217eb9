// Replays the Puffy CSVs into a goalstep server through the historical import route
// (`POST /v1/import`, docs/API.md), then waits until reports reflect every accepted batch.
import { readRows, toMessages } from './puffy.mjs';

const DAY_MS = 86_400_000;
// The server refuses bodies over 500 KB; stay well under it whatever `batchSize` says.
const MAX_BODY_BYTES = 450_000;
const MAX_ATTEMPTS = 8;
const REQUEST_TIMEOUT_MS = 60_000;
const PENDING_POLL_MS = 100;

/** A failure retrying cannot fix (bad token, unknown site, retries exhausted). */
export class ReplayError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'ReplayError';
    this.status = status;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function backoffMs(attempt, retryAfter) {
  const seconds = Number(retryAfter);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 30_000);
  // Exponential with jitter so that concurrent workers do not retry in lockstep.
  const base = Math.min(250 * 2 ** attempt, 10_000);
  return base / 2 + Math.random() * (base / 2);
}

function utcDay(ms) {
  return new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
}

/** Groups messages into batches of at most `batchSize` messages and `MAX_BODY_BYTES` bytes. */
async function* batches(rows, batchSize, stats) {
  let batch = [];
  let bytes = 0;
  for await (const record of rows) {
    stats.rows += 1;
    for (const message of toMessages(record)) {
      const time = Date.parse(message.timestamp);
      if (Number.isFinite(time)) {
        stats.minTime = Math.min(stats.minTime, time);
        stats.maxTime = Math.max(stats.maxTime, time);
      }
      const size = Buffer.byteLength(JSON.stringify(message)) + 1;
      if (batch.length > 0 && (batch.length >= batchSize || bytes + size > MAX_BODY_BYTES)) {
        yield batch;
        batch = [];
        bytes = 0;
      }
      batch.push(message);
      bytes += size;
    }
  }
  if (batch.length > 0) yield batch;
}

function countBy(target, items) {
  for (const item of items ?? []) {
    const code = item?.code ?? 'unknown';
    target[code] = (target[code] ?? 0) + 1;
  }
}

/**
 * Sends all rows of the CSVs in `dir` (or only the basenames in `files`) to
 * `<url>/v1/import?site=<siteId>` and waits for `pendingBatches` to reach 0. Resolves with the
 * summary; rejects with a `ReplayError` on an unrecoverable failure.
 */
export async function replay({
  dir,
  url,
  adminToken,
  siteId,
  batchSize = 100,
  concurrency = 4,
  files,
  onProgress,
  sentAt = true,
  statusTimeoutMs = 120_000,
}) {
  if (!adminToken) throw new ReplayError('no admin token');
  if (!siteId) throw new ReplayError('no site id');
  const base = url.replace(/\/+$/, '');
  const importUrl = `${base}/v1/import?site=${encodeURIComponent(siteId)}`;
  const siteUrl = `${base}/admin/sites/${encodeURIComponent(siteId)}`;
  const headers = { authorization: `Bearer ${adminToken}` };
  const started = Date.now();
  const stats = {
    rows: 0,
    sent: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    rejectedByCode: {},
    warnings: 0,
    warningsByCode: {},
    rejectedExamples: [],
    filtered: 0,
    filteredByCode: {},
    batches: 0,
    retries: 0,
    minTime: Infinity,
    maxTime: -Infinity,
  };
  const progress = () => {
    if (!onProgress) return;
    const seconds = (Date.now() - started) / 1000;
    onProgress({
      rows: stats.rows,
      sent: stats.sent,
      accepted: stats.accepted,
      duplicates: stats.duplicates,
      rejected: stats.rejected,
      eventsPerSecond: seconds > 0 ? stats.sent / seconds : 0,
    });
  };

  let failure;

  function record(batch, body) {
    stats.batches += 1;
    stats.sent += batch.length;
    stats.accepted += Number(body.accepted) || 0;
    stats.duplicates += Number(body.duplicates) || 0;
    const rejected = Array.isArray(body.rejected) ? body.rejected : [];
    stats.rejected += rejected.length;
    countBy(stats.rejectedByCode, rejected);
    for (const item of rejected) {
      if (stats.rejectedExamples.length >= 5) break;
      stats.rejectedExamples.push({
        messageId: batch[item.index]?.messageId,
        code: item.code,
        message: item.message,
      });
    }
    const filtered = Array.isArray(body.filtered) ? body.filtered : [];
    stats.filtered += filtered.length;
    countBy(stats.filteredByCode, filtered);
    const warnings = Array.isArray(body.warnings) ? body.warnings : [];
    stats.warnings += warnings.length;
    countBy(stats.warningsByCode, warnings);
    progress();
  }

  async function send(batch) {
    for (let attempt = 0; ; attempt++) {
      if (failure) return;
      let response;
      let problem;
      try {
        const body = { batch };
        // Set per attempt: a server that corrects clock skew compares it with its own clock.
        if (sentAt) body.sentAt = new Date().toISOString();
        response = await fetch(importUrl, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
      } catch (error) {
        problem = `network error: ${error.cause?.code ?? error.cause?.message ?? error.message}`;
      }
      if (response) {
        const text = await response.text().catch(() => '');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        if ((response.status === 200 || response.status === 400) && json) {
          // 400 means every event of the batch was refused; it is reported like a 200.
          record(batch, json);
          return;
        }
        if (response.status === 413 && batch.length > 1) {
          const half = Math.ceil(batch.length / 2);
          await send(batch.slice(0, half));
          await send(batch.slice(half));
          return;
        }
        const detail = json?.message ?? text.slice(0, 200);
        const retryable =
          response.status === 429 || response.status >= 500 || response.status === 200;
        if (!retryable) {
          throw new ReplayError(
            `POST ${importUrl} → ${response.status} ${json?.code ?? ''} ${detail}`.trim(),
            response.status,
          );
        }
        problem = `HTTP ${response.status} ${detail}`.trim();
      }
      if (attempt + 1 >= MAX_ATTEMPTS) {
        throw new ReplayError(`batch failed after ${MAX_ATTEMPTS} attempts: ${problem}`);
      }
      stats.retries += 1;
      await sleep(backoffMs(attempt, response?.headers.get('retry-after')));
    }
  }

  const queue = batches(readRows(dir, files), batchSize, stats);
  async function worker() {
    while (!failure) {
      const { value, done } = await queue.next();
      if (done) return;
      try {
        await send(value);
      } catch (error) {
        failure ??= error;
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  } finally {
    // Closes the CSV stream if a failure stopped the workers early.
    await queue.return();
  }
  if (failure) throw failure;
  if (stats.rows === 0) throw new ReplayError(`no CSV rows found in ${dir}`);
  progress();
  const sendSeconds = (Date.now() - started) / 1000;

  const { settled, lastError } = await waitForReports(
    `${siteUrl}/pending`,
    headers,
    statusTimeoutMs,
  );
  const wallSeconds = (Date.now() - started) / 1000;
  // The status counts every stored event: read once, after the wall time.
  const status = await getJson(`${siteUrl}/status`, headers).catch(() => null);
  const { minTime, maxTime, ...counts } = stats;
  return {
    ...counts,
    from: Number.isFinite(minTime) ? utcDay(minTime) : null,
    to: Number.isFinite(maxTime) ? utcDay(maxTime + DAY_MS) : null,
    sendSeconds,
    wallSeconds,
    eventsPerSecond: sendSeconds > 0 ? Math.round(stats.sent / sendSeconds) : null,
    settled,
    // Why the last poll failed, when the wait ended on a failing poll (a stopped stack).
    pendingError: settled ? null : lastError,
    status,
  };
}

/** One admin GET's JSON answer; a refusal (401, 403, 404) is a ReplayError, others throw. */
async function getJson(url, headers) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (response.status === 401 || response.status === 403 || response.status === 404) {
    throw new ReplayError(`GET ${url} → ${response.status}`, response.status);
  }
  if (!response.ok) throw new Error(`GET ${url} → ${response.status}`);
  return response.json();
}

/** How long polls may fail in a row (no answer, or a 5xx) before the wait gives up. */
const POLL_FAILING_MS = 10_000;

/**
 * Polls `/pending` until no batch is pending, the timeout passes, or every poll has failed for
 * `POLL_FAILING_MS` (a stopped server): `{ settled, lastError }`, the last poll's failure (null
 * when it answered).
 */
async function waitForReports(pendingUrl, headers, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let failingSince = null;
  for (;;) {
    let lastError = null;
    try {
      if ((await getJson(pendingUrl, headers))?.pendingBatches === 0) {
        return { settled: true, lastError };
      }
      failingSince = null;
    } catch (error) {
      if (error instanceof ReplayError) throw error;
      // Transient, until it has lasted POLL_FAILING_MS.
      lastError = error?.cause?.code ?? error?.message ?? String(error);
      failingSince ??= Date.now();
    }
    const failedTooLong = failingSince !== null && Date.now() - failingSince >= POLL_FAILING_MS;
    if (Date.now() >= deadline || failedTooLong) return { settled: false, lastError };
    await sleep(PENDING_POLL_MS);
  }
}

/** The share URL of a goal report for `[from, to)` (YYYY-MM-DD days). */
export function reportUrl(url, shareToken, goalId, { from, to }) {
  const base = url.replace(/\/+$/, '');
  const query = new URLSearchParams({ from, to });
  return `${base}/r/${encodeURIComponent(shareToken)}/${encodeURIComponent(goalId)}?${query}`;
}
