/** Admin people endpoints and small builders for the identity tests. */
import { SELF } from 'cloudflare:test';
import { ADMIN, type TestSite } from './helpers';

const BASE = 'https://goalstep.test';

export interface Explain {
  person: string;
  userIds: string[];
  anonymousIds: string[];
  links: Array<{ anonymousId: string; userId: string; messageId: string; type: string | null }>;
  merges: Array<{ userIds: [string, string]; messageId?: string; actionId?: number }>;
  refused: Array<{ messageId: string; reason: string }>;
  ignored: Array<{ messageId: string; reason: string }>;
  deviceHistory?: Array<{ from: string; person: string; messageId: string }>;
  actions: Array<{ id: number; kind: string; by: string; revertedAt: string | null }>;
  events: number;
  eventsUsed: number;
}

export interface IdentityStats {
  events: number;
  people: number;
  users: number;
  devices: number;
  linkedDevices: number;
  userMerges: number;
  refusedAliases: number;
}

/** GET the explain answer for a user or device id; returns the response for error checks. */
export function explainRaw(site: TestSite, query: { userId?: string; anonymousId?: string }) {
  const params = new URLSearchParams(query as Record<string, string>);
  return SELF.fetch(`${BASE}/admin/sites/${site.siteId}/people?${params}`, { headers: ADMIN });
}

export async function explain(
  site: TestSite,
  query: { userId?: string; anonymousId?: string },
): Promise<Explain> {
  const res = await explainRaw(site, query);
  expect(res.status).toBe(200);
  return (await res.json()) as Explain;
}

export async function identityStats(site: TestSite): Promise<IdentityStats> {
  const res = await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/identity`, { headers: ADMIN });
  expect(res.status).toBe(200);
  return (await res.json()) as IdentityStats;
}

/**
 * POSTs an admin people action (`merge` or `split`); a string body is sent as written (for
 * numbers JSON.stringify would round). `auth` replaces the root token's header.
 */
export function peopleAction(
  site: TestSite,
  action: 'merge' | 'split',
  body: unknown,
  auth: Record<string, string> = ADMIN,
) {
  return SELF.fetch(`${BASE}/admin/sites/${site.siteId}/people/${action}`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export function revertAction(
  site: TestSite,
  actionId: number,
  auth: Record<string, string> = ADMIN,
) {
  return SELF.fetch(`${BASE}/admin/sites/${site.siteId}/people/actions/${actionId}`, {
    method: 'DELETE',
    headers: auth,
  });
}

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  action: string;
  siteId: string | null;
  detail: unknown;
}

/** The site's audit entries whose action starts with `prefix`, newest first. */
export async function auditOf(site: TestSite, prefix: string): Promise<AuditEntry[]> {
  const res = await SELF.fetch(`${BASE}/admin/audit?site=${site.siteId}`, { headers: ADMIN });
  expect(res.status).toBe(200);
  const { entries } = (await res.json()) as { entries: AuditEntry[] };
  return entries.filter((e) => e.action.startsWith(prefix));
}

/** Adds another goal to a seeded site and returns a site handle whose reports read it. */
export async function addGoal(site: TestSite, goalId: string, steps: string[], window = '7d') {
  const res = await SELF.fetch(`${BASE}/admin/sites/${site.siteId}/goals/${goalId}`, {
    method: 'PUT',
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: goalId, window, steps: steps.map((event) => ({ event })) }),
  });
  expect(res.ok).toBe(true);
  return { ...site, goalId };
}

/** Posts a raw JSON text to the import path (for bodies JSON.stringify cannot write). */
export function importText(site: TestSite, text: string) {
  return SELF.fetch(`${BASE}/v1/import?site=${site.siteId}`, {
    method: 'POST',
    headers: { ...ADMIN, 'Content-Type': 'application/json' },
    body: text,
  });
}
