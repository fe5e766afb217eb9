/**
 * Step-health alerts end to end: events through the real Worker's import path, the scheduled
 * handler run for a sequence of intervals (`--test-scheduled`), deliveries received by a real
 * HTTP server on 127.0.0.1 that verifies the HMAC signature. The receiver is down when the alert
 * opens and comes back later: every notice arrives exactly once.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort, waitForSettled } from '../../scripts/lib/stack.mjs';
import { useTestStack } from './test-stack';

const stack = useTestStack('alerts');
const H = 3_600_000;
const T = Date.parse('2025-03-10T00:00:00Z');
const SITE = 'e2e-alerts';
const SECRET = 'whsec_e2e_alerts_secret_0000000001';

interface Received {
  path: string;
  body: Record<string, unknown>;
  signatureOk: boolean | null;
}

async function admin(method: string, path: string, body?: unknown) {
  const { baseUrl, adminToken } = stack();
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** How far a signature's timestamp may be from the receiver's clock (docs/ALERTS.md). */
const TOLERANCE_S = 300;

/**
 * Checks `Goalstep-Signature: t=…,v1=…` the way a receiver would: HMAC-SHA256 of "t.body" with
 * the secret, and `t` within five minutes of the receiver's own clock (a replay is refused).
 */
function verify(header: string | undefined, raw: string, secret = SECRET): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  if (Math.abs(Number(match[1]) - Date.now() / 1000) > TOLERANCE_S) return false;
  const expected = createHmac('sha256', secret).update(`${match[1]}.${raw}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2] as string, 'hex'));
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/** A receiver on 127.0.0.1:port that records what it gets; `close()` takes it down. */
function startReceiver(port: number, received: Received[]): Promise<Server> {
  const server = createServer(async (request, response) => {
    const raw = await readBody(request);
    const path = request.url ?? '';
    const signatureOk =
      path === '/hook' ? verify(request.headers['goalstep-signature'] as string, raw) : null;
    received.push({ path, body: JSON.parse(raw) as Record<string, unknown>, signatureOk });
    response.writeHead(signatureOk === false ? 401 : 200).end('ok');
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => server.close(() => resolve()));

async function runCron(at: number): Promise<void> {
  const { baseUrl } = stack();
  const response = await fetch(`${baseUrl}/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*&time=${at}`);
  expect(response.status).toBe(200);
  await response.text();
}

/** Hourly events: `view` 30/h and `checkout` 24/h for three days, checkout gone 03:00–06:00. */
function events(): unknown[] {
  const out: unknown[] = [];
  for (let hour = T - 3 * 24 * H; hour < T + 9 * H; hour += H) {
    const stopped = hour >= T + 3 * H && hour < T + 6 * H;
    const rates: Array<[string, number]> = [
      ['view', 30],
      ['checkout', stopped ? 0 : 24],
    ];
    for (const [event, rate] of rates) {
      for (let i = 0; i < rate; i += 1) {
        out.push({
          type: 'track',
          event,
          anonymousId: `anon-${hour}-${i}`,
          messageId: `e2e-alerts-${event}-${hour}-${i}`,
          timestamp: new Date(hour + Math.floor(((i + 0.5) * H) / rate)).toISOString(),
        });
      }
    }
  }
  return out;
}

describe('alert delivery through the real Worker', () => {
  const received: Received[] = [];
  let receiver: Server | undefined;

  afterAll(async () => {
    if (receiver?.listening) await closeServer(receiver);
  });

  it('delivers open and resolve once per channel after the receiver was down', async () => {
    // Arrange: a site, a goal, two channels pointing at a receiver port that is not yet listening.
    const port = await freePort(10_500, 400);
    await admin('PUT', `/admin/sites/${SITE}`, {
      name: SITE,
      writeKey: 'wk_e2e_alerts_key_0000000001',
    });
    await admin('PUT', `/admin/sites/${SITE}/goals/buy`, {
      name: 'Buy',
      steps: [{ event: 'view' }, { event: 'checkout' }],
    });
    await admin('PUT', `/admin/sites/${SITE}/alerts/config`, {
      reportLink: `${stack().baseUrl}/r/sh_x`,
    });
    await admin('POST', `/admin/sites/${SITE}/alerts/channels`, {
      kind: 'webhook',
      name: 'hook',
      url: `http://127.0.0.1:${port}/hook`,
      secret: SECRET,
    });
    await admin('POST', `/admin/sites/${SITE}/alerts/channels`, {
      kind: 'pagerduty',
      name: 'pd',
      url: `http://127.0.0.1:${port}/pd`,
      routingKey: 'rk-e2e',
      minSeverity: 'critical',
    });
    const batch = events();
    for (let i = 0; i < batch.length; i += 400) {
      const { baseUrl, adminToken } = stack();
      const response = await fetch(`${baseUrl}/v1/import?site=${SITE}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ batch: batch.slice(i, i + 400) }),
      });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { accepted: number }).accepted).toBe(
        Math.min(400, batch.length - i),
      );
    }

    // The site object copies what it took to D1 (which the checks read) in its next write cycle.
    await waitForSettled(stack().baseUrl, stack().adminToken, { siteId: SITE });

    // Act: the cron every 15 minutes from 03:00 to 09:00; the receiver comes up at 05:30.
    for (let at = T + 3 * H; at <= T + 9 * H; at += 15 * 60_000) {
      if (at === T + 5 * H + 30 * 60_000) receiver = await startReceiver(port, received);
      // Each slot fires twice at once, as an overlapping or repeated cron would.
      await Promise.all([runCron(at), runCron(at)]);
      if (at === T + 5 * H + 15 * 60_000) expect(received).toEqual([]);
    }

    // Assert: open (04:15 judges 03:00–04:00), resolve (07:15 judges 06:00–07:00), once each.
    const hooks = received.filter((r) => r.path === '/hook');
    expect(hooks.every((r) => r.signatureOk === true)).toBe(true);
    expect(
      hooks.map((r) => [
        r.body.type,
        (r.body.alert as { kind: string; step: string }).kind,
        (r.body.alert as { step: string }).step,
      ]),
    ).toEqual([
      ['alert.open', 'step_stopped', 'checkout'],
      ['alert.resolve', 'step_stopped', 'checkout'],
    ]);
    expect(new Set(hooks.map((r) => r.body.id)).size).toBe(2);
    expect(hooks[0]?.body.alert as { observed: number; expected: number }).toMatchObject({
      observed: 0,
      expected: 24,
    });
    expect(hooks[0]?.body.reportUrl).toBe(
      `${stack().baseUrl}/r/sh_x/buy?from=2025-03-10&to=2025-03-11`,
    );

    const pd = received.filter((r) => r.path === '/pd').map((r) => r.body);
    expect(pd.map((b) => b.event_action)).toEqual(['trigger', 'resolve']);
    expect(pd[0]?.dedup_key).toBe(pd[1]?.dedup_key);
    expect(pd[0]?.routing_key).toBe('rk-e2e');

    // Every attempt is recorded: the failed ones while the receiver was down, then one success.
    const { deliveries } = (await admin('GET', `/admin/sites/${SITE}/alerts/deliveries`)) as {
      deliveries: Array<{ status: string; attempts: number }>;
    };
    expect(deliveries).toHaveLength(4);
    expect(deliveries.every((d) => d.status === 'delivered')).toBe(true);
    expect(Math.max(...deliveries.map((d) => d.attempts))).toBeGreaterThan(1);
  });
});

describe('delivery to a slow receiver', () => {
  const SLOW_SITE = 'e2e-alerts-slow';
  const servers: Server[] = [];
  const held: ServerResponse[] = [];

  afterAll(async () => {
    for (const response of held) response.destroy();
    for (const server of servers) {
      server.closeAllConnections();
      await closeServer(server);
    }
  });

  it('signs each notice as it is sent; one slow receiver holds no other', async () => {
    // Arrange: receivers on three ports. "slow" answers only once "fast" has its notice (or
    // after 12 s); "hang" never answers; each verifies the signature and its timestamp.
    const log: Array<{ name: string; at: number; signatureOk: boolean; slowOpen: boolean }> = [];
    let slowOpen = false;
    let releaseSlow: () => void = () => undefined;
    const receiver = async (name: string) => {
      const port = await freePort(11_000 + servers.length * 100, 100);
      const server = createServer(async (request, response) => {
        const raw = await readBody(request);
        const secret = `whsec_e2e_${name}_secret_000000000001`;
        const signatureOk = verify(request.headers['goalstep-signature'] as string, raw, secret);
        log.push({ name, at: Date.now(), signatureOk, slowOpen });
        if (name === 'hang') {
          held.push(response);
          return;
        }
        if (name === 'slow') {
          slowOpen = true;
          await new Promise<void>((resolve) => {
            releaseSlow = resolve;
            setTimeout(resolve, 12_000);
          });
          slowOpen = false;
        }
        if (name === 'fast') releaseSlow();
        response.writeHead(signatureOk ? 200 : 401).end('ok');
      });
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
      servers.push(server);
      return {
        name,
        url: `http://127.0.0.1:${port}/hook`,
        secret: `whsec_e2e_${name}_secret_000000000001`,
      };
    };
    await admin('PUT', `/admin/sites/${SLOW_SITE}`, {
      name: SLOW_SITE,
      writeKey: 'wk_e2e_alerts_slow_key_00000001',
    });
    await admin('PUT', `/admin/sites/${SLOW_SITE}/goals/buy`, {
      name: 'Buy',
      steps: [{ event: 'view' }, { event: 'checkout' }],
    });
    // A floor rule fires without any history: checkout under 10 in the judged hour.
    await admin('PUT', `/admin/sites/${SLOW_SITE}/alerts/config`, {
      rules: [{ id: 'checkout-floor', event: 'checkout', below: 10 }],
    });
    // Created in this order, so a sender going one by one meets "slow" before "fast".
    for (const r of [await receiver('slow'), await receiver('hang'), await receiver('fast')]) {
      await admin('POST', `/admin/sites/${SLOW_SITE}/alerts/channels`, {
        kind: 'webhook',
        name: r.name,
        url: r.url,
        secret: r.secret,
      });
    }
    const { baseUrl, adminToken } = stack();
    const imported = await fetch(`${baseUrl}/v1/import?site=${SLOW_SITE}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        batch: [
          {
            type: 'track',
            event: 'view',
            anonymousId: 'a1',
            messageId: 'slow-1',
            timestamp: new Date(T + 30 * 60_000).toISOString(),
          },
        ],
      }),
    });
    expect(imported.status).toBe(200);
    await waitForSettled(baseUrl, adminToken, { siteId: SLOW_SITE });

    // Act: 02:15 judges 01:00–02:00, where checkout counted 0.
    const started = Date.now();
    await runCron(T + 2 * H + 15 * 60_000);
    const took = Date.now() - started;

    // Assert: "fast" got its notice while "slow" was still open, every signature verified
    // against the receiver's clock, and the run ended about one timeout after "hang" was asked.
    expect(log.map((entry) => entry.name).sort()).toEqual(['fast', 'hang', 'slow']);
    expect(log.every((entry) => entry.signatureOk)).toBe(true);
    expect(log.find((entry) => entry.name === 'fast')?.slowOpen).toBe(true);
    expect(took).toBeLessThan(25_000);
    const { deliveries } = (await admin('GET', `/admin/sites/${SLOW_SITE}/alerts/deliveries`)) as {
      deliveries: Array<{ status: string; attempts: number; lastError: string | null }>;
    };
    expect(deliveries.map((d) => d.status).sort()).toEqual(['delivered', 'delivered', 'pending']);
    const hang = deliveries.find((d) => d.status === 'pending');
    expect(hang?.attempts).toBe(1);
    expect(hang?.lastError).toMatch(/timeout/i);
  });
});
