/**
 * Reads an ingest request body within the size limit: JSON or `text/plain` (sendBeacon), plain
 * or gzip-encoded. Throws `ApiError` with a stable code when the body is unusable.
 */
import { ApiError } from '../lib/http-error';
import { idReviver } from './lossless-ids';

/** An id field written as a JSON number, or any `\u` escape (which could spell one's key). */
const MAY_HOLD_NUMERIC_ID = /"(?:anonymousId|userId|previousId)"\s*:\s*[-\d]|\\u/;

/** Segment's batch limit. */
export const MAX_BODY_BYTES = 500 * 1024;

async function readCapped(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw new ApiError(413, 'body_too_large', `request body is over ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** Reads and parses the body; the limit applies to the decompressed size as well. */
export async function readJsonBody(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > MAX_BODY_BYTES) {
    throw new ApiError(413, 'body_too_large', `request body is over ${MAX_BODY_BYTES} bytes`);
  }
  if (!request.body) throw new ApiError(400, 'empty_body', 'request body is empty');

  const encoding = (request.headers.get('content-encoding') ?? '').toLowerCase();
  let stream: ReadableStream<Uint8Array> = request.body;
  if (encoding === 'gzip') {
    stream = request.body.pipeThrough(new DecompressionStream('gzip'));
  } else if (encoding && encoding !== 'identity') {
    throw new ApiError(
      415,
      'unsupported_encoding',
      `content-encoding ${encoding} is not supported`,
    );
  }

  let bytes: Uint8Array;
  try {
    bytes = await readCapped(stream, MAX_BODY_BYTES);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(400, 'invalid_encoding', 'request body could not be decompressed', {
      cause: error,
    });
  }
  if (bytes.byteLength === 0) throw new ApiError(400, 'empty_body', 'request body is empty');

  // Broken UTF-8 becomes U+FFFD rather than an exception: the JSON may still be usable.
  const text = new TextDecoder('utf-8').decode(bytes);
  try {
    // The reviver runs for every value of the body: only a body that may hold a numeric id
    // needs it (an escaped key could spell an id field, so any escape counts as may).
    return JSON.parse(text, MAY_HOLD_NUMERIC_ID.test(text) ? idReviver : undefined);
  } catch (error) {
    // A reviver walks the parsed value recursively: extreme nesting overflows its stack while a
    // plain parse succeeds. Such a body keeps its events (deep values are capped later), and only
    // big numeric ids in it lose their exact text.
    if (error instanceof RangeError) {
      try {
        return JSON.parse(text);
      } catch {
        // Not JSON after all: answered below.
      }
    }
    throw new UnreadableBodyError(text, error);
  }
}

/** A body that arrived whole but is not JSON; it keeps the text so it can be filed (C06, C07). */
export class UnreadableBodyError extends ApiError {
  constructor(
    readonly text: string,
    cause: unknown,
  ) {
    super(400, 'invalid_json', 'request body is not valid JSON', { cause });
  }
}
