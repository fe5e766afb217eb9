/** The tracker's routes: the short-lived entry redirect and the immutable, content-hashed file. */
import { SELF } from 'cloudflare:test';

const BASE = 'https://goalstep.test';
const get = (path: string) => SELF.fetch(`${BASE}${path}`, { redirect: 'manual' });

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function gzipBytes(text: string): Promise<number> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

describe('tracker routes', () => {
  it('redirects /t.js to the hashed file with a five-minute cache', async () => {
    const response = await get('/t.js');

    expect(response.status).toBe(302);
    expect(response.headers.get('Cache-Control')).toBe('public, max-age=300');
    expect(response.headers.get('Location')).toMatch(/^\/t\/[0-9a-f]{16}\.js$/);
  });

  it('serves the hashed file immutably, named by the hash of its content', async () => {
    const location = (await get('/t.js')).headers.get('Location') ?? '';

    const response = await get(location);
    const script = await response.text();

    expect(response.status).toBe(200);
    expect(response.headers.get('Content-Type')).toBe('text/javascript; charset=utf-8');
    expect(response.headers.get('Cache-Control')).toBe('public, max-age=31536000, immutable');
    expect(location).toBe(`/t/${(await sha256Hex(script)).slice(0, 16)}.js`);
    expect(script).toContain('/v1/batch');
  });

  it('keeps the tracker under 3 KB gzipped', async () => {
    const location = (await get('/t.js')).headers.get('Location') ?? '';
    const script = await (await get(location)).text();

    const size = await gzipBytes(script);

    expect(size).toBeGreaterThan(500);
    expect(size).toBeLessThan(3 * 1024);
  });

  it('sends a page holding an outdated hash to the current file', async () => {
    const current = (await get('/t.js')).headers.get('Location');

    const response = await get('/t/0123456789abcdef.js');

    expect(response.status).toBe(302);
    expect(response.headers.get('Location')).toBe(current);
  });

  it('answers 404 with a stable code for a name that is not a hashed file', async () => {
    const response = await get('/t/..%2Fsecrets.js');

    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ code: 'not_found' });
  });
});
