/**
 * The browser tracker's routes. `GET /t.js` is the address sites put in their one-line tag: a
 * redirect with a short cache lifetime to `GET /t/<hash>.js`, the content-hashed script that is
 * cached for good. An update reaches every site within `ENTRY_MAX_AGE_SECONDS`.
 */
import { Hono } from 'hono';
import type { Env } from '../env';
import { ApiError } from '../lib/http-error';
import { TRACKER_HASH, TRACKER_JS } from './generated/tracker-bundle';

/** How long browsers and caches may keep the `/t.js` redirect. */
export const ENTRY_MAX_AGE_SECONDS = 300;

const HASHED_FILE = /^[0-9a-f]{16}\.js$/;

/** The path of the current tracker script. */
export function trackerPath(hash = TRACKER_HASH): string {
  return `/t/${hash}.js`;
}

export const trackerRoutes = new Hono<{ Bindings: Env }>();

trackerRoutes.get('/t.js', (c) => {
  c.header('Cache-Control', `public, max-age=${ENTRY_MAX_AGE_SECONDS}`);
  return c.redirect(trackerPath(), 302);
});

trackerRoutes.get('/t/:file', (c) => {
  const file = c.req.param('file');
  if (!HASHED_FILE.test(file)) throw new ApiError(404, 'not_found', 'no such tracker file');

  // A page that still holds an older redirect asks for a hash this deployment no longer has:
  // it gets today's script rather than no tracking, by a redirect it does not keep for long.
  if (file !== `${TRACKER_HASH}.js`) {
    c.header('Cache-Control', `public, max-age=${ENTRY_MAX_AGE_SECONDS}`);
    return c.redirect(trackerPath(), 302);
  }
  return c.body(TRACKER_JS, 200, {
    'Content-Type': 'text/javascript; charset=utf-8',
    'Cache-Control': 'public, max-age=31536000, immutable',
    ETag: `"${TRACKER_HASH}"`,
    // Sites that isolate themselves (COEP) may still load it; it holds nothing private.
    'Cross-Origin-Resource-Policy': 'cross-origin',
    'Access-Control-Allow-Origin': '*',
    'X-Content-Type-Options': 'nosniff',
  });
});
