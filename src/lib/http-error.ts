/** Every non-ingest error answer: a stable `code`, a human `message`, an HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 503,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

/** A 429 with the seconds a client should wait, sent as `Retry-After`. */
export class RateLimitedError extends ApiError {
  constructor(
    readonly retryAfterSeconds: number,
    limit: string,
  ) {
    const per = limit === 'addr' ? 'address' : 'write key';
    super(429, 'rate_limited', `too many requests per ${per}; retry later`);
    this.name = 'RateLimitedError';
  }
}
