/**
 * A small, independent model of docs/IDENTITY.md and the ordered funnel of docs/METRICS.md, for
 * the property test. Written from the two pages, not from src/: plain arrays and loops, no
 * shared code, so a misreading in the product does not repeat itself here.
 */

export interface SentEvent {
  type: 'track' | 'identify' | 'alias';
  messageId: string;
  /** Epoch ms. */
  ts: number;
  event?: string;
  anonymousId?: string;
  userId?: string;
  previousId?: string;
}

export interface ModelReport {
  counts: number[];
  /** Median seconds from the previous step, per step; null for step 1 and empty sets. */
  medians: Array<number | null>;
  people: number;
}

const PLACEHOLDERS = [
  '',
  'null',
  'undefined',
  'nan',
  'anonymous',
  'guest',
  '0',
  '-1',
  '[object object]',
];
const isPlaceholder = (id: string) => PLACEHOLDERS.includes(id.trim().toLowerCase());

/** Event-time order: time, then message id. */
const before = (a: { ts: number; messageId: string }, b: { ts: number; messageId: string }) =>
  a.ts !== b.ts ? a.ts - b.ts : a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;

/** Drops placeholder ids and the events that have nothing left, as ingest does. */
function keptEvents(sent: readonly SentEvent[]): SentEvent[] {
  const kept: SentEvent[] = [];
  for (const raw of sent) {
    const e: SentEvent = { ...raw };
    for (const field of ['anonymousId', 'userId', 'previousId'] as const) {
      const value = e[field];
      if (value !== undefined && isPlaceholder(value)) delete e[field];
    }
    if (e.type === 'alias' && (e.previousId === undefined || e.userId === undefined)) continue;
    if (e.type !== 'alias' && e.anonymousId === undefined && e.userId === undefined) continue;
    kept.push(e);
  }
  return kept;
}

/**
 * The admin actions in effect (reverted ones left out), each with the id the product gave it,
 * which orders them. Every split here is made after all sent events' times, so by the split
 * rule it reaches back over all of them.
 */
export interface ModelActions {
  merges: ReadonlyArray<{ id: number; userIds: readonly [string, string] }>;
  splits: ReadonlyArray<{ id: number; anonymousId?: string; userId?: string }>;
}

const NO_ACTIONS: ModelActions = { merges: [], splits: [] };

/**
 * Which person each kept event counts for, by the rules of docs/IDENTITY.md. Admin merges apply
 * before any alias, unless a later user split of one of their users cut them. A device split
 * cuts every link of the device; a user split cuts every user-to-user alias naming the user.
 */
export function modelPeople(
  sent: readonly SentEvent[],
  actions: ModelActions = NO_ACTIONS,
): Array<{ event: SentEvent; person: string }> {
  const events = keptEvents(sent);
  const splitDevices = actions.splits.flatMap((s) => s.anonymousId ?? []);
  const splitUsers = actions.splits.flatMap((s) => s.userId ?? []);
  const adminMerges = actions.merges
    .filter(
      (m) =>
        !actions.splits.some(
          (s) => s.userId !== undefined && s.id > m.id && m.userIds.includes(s.userId),
        ),
    )
    .map((m) => m.userIds);

  // Users, each user's first event, and the first event that identifies them (not an alias).
  const first = new Map<string, SentEvent>();
  const identifying = new Map<string, SentEvent>();
  for (const e of events) {
    if (e.userId === undefined) continue;
    const seen = first.get(e.userId);
    if (!seen || before(e, seen) < 0) first.set(e.userId, e);
    const since = identifying.get(e.userId);
    if (e.type !== 'alias' && (!since || before(e, since) < 0)) identifying.set(e.userId, e);
  }
  const identified = new Set(identifying.keys());

  // Groups of users as plain arrays; aliases in event-time order.
  let groups: string[][] = [...first.keys()].map((u) => [u]);
  const groupOf = (u: string) => groups.find((g) => g.includes(u)) as string[];
  for (const [a, b] of adminMerges) {
    if (!first.has(a) || !first.has(b) || groupOf(a) === groupOf(b)) continue;
    const ga = groupOf(a);
    const gb = groupOf(b);
    groups = [...groups.filter((g) => g !== ga && g !== gb), [...ga, ...gb]];
  }
  const deviceLinks: Array<{ device: string; user: string; ts: number; messageId: string }> = [];
  for (const e of [...events].sort(before)) {
    if (e.type === 'alias') {
      const p = e.previousId as string;
      const u = e.userId as string;
      if (p === u) continue;
      if (!first.has(p)) {
        deviceLinks.push({ device: p, user: u, ts: e.ts, messageId: e.messageId });
        continue;
      }
      if (splitUsers.includes(p) || splitUsers.includes(u)) continue;
      const gp = groupOf(p);
      const gu = groupOf(u);
      if (gp === gu) continue;
      // Refused when both sides already held a user identified before the alias.
      const known = (g: string[]) =>
        g.some((x) => identifying.has(x) && before(identifying.get(x) as SentEvent, e) < 0);
      if (known(gp) && known(gu)) continue;
      groups = [...groups.filter((g) => g !== gp && g !== gu), [...gp, ...gu]];
    } else if (e.anonymousId !== undefined && e.userId !== undefined) {
      deviceLinks.push({ device: e.anonymousId, user: e.userId, ts: e.ts, messageId: e.messageId });
    }
  }

  const nameOf = (u: string) => {
    const ranked = [...groupOf(u)].sort((a, b) => {
      const ia = identified.has(a) ? 0 : 1;
      const ib = identified.has(b) ? 0 : 1;
      if (ia !== ib) return ia - ib;
      const order = before(first.get(a) as SentEvent, first.get(b) as SentEvent);
      return order !== 0 ? order : a < b ? -1 : 1;
    });
    return `u:${ranked[0]}`;
  };

  return events.map((e) => {
    if (e.userId !== undefined) return { event: e, person: nameOf(e.userId) };
    const device = e.anonymousId as string;
    const links = splitDevices.includes(device)
      ? []
      : deviceLinks.filter((l) => l.device === device).sort(before);
    if (links.length === 0) return { event: e, person: `a:${device}` };
    const atOrBefore = links.filter((l) => before(l, e) <= 0);
    const link = atOrBefore.length > 0 ? atOrBefore[atOrBefore.length - 1] : links[0];
    return { event: e, person: nameOf((link as { user: string }).user) };
  });
}

/** The ordered funnel report over the model's people for an entry range [from, to). */
export function modelReport(
  sent: readonly SentEvent[],
  goal: { steps: string[]; windowMs: number },
  range: { from: number; to: number },
  actions: ModelActions = NO_ACTIONS,
): ModelReport {
  const assigned = modelPeople(sent, actions);
  const byPerson = new Map<string, SentEvent[]>();
  for (const { event, person } of assigned) {
    byPerson.set(person, [...(byPerson.get(person) ?? []), event]);
  }

  const n = goal.steps.length;
  const counts = Array.from({ length: n }, () => 0);
  const gaps: number[][] = Array.from({ length: n }, () => []);
  for (const events of byPerson.values()) {
    const steps = events.filter((e) => e.type === 'track').sort(before);
    let best: number[] | null = null;
    const starts = new Set<number>();
    for (const entry of steps) {
      if (entry.event !== goal.steps[0] || starts.has(entry.ts)) continue;
      starts.add(entry.ts);
      const used = new Set([entry]);
      const times = [entry.ts];
      for (let k = 1; k < n; k += 1) {
        const next = steps.find(
          (e) =>
            !used.has(e) &&
            e.event === goal.steps[k] &&
            e.ts >= (times[k - 1] as number) &&
            e.ts <= entry.ts + goal.windowMs,
        );
        if (!next) break;
        used.add(next);
        times.push(next.ts);
      }
      if (entry.ts < range.from || entry.ts >= range.to) continue;
      if (
        !best ||
        times.length > best.length ||
        (times.length === best.length && times[0]! < best[0]!)
      ) {
        best = times;
      }
    }
    if (!best) continue;
    for (let k = 0; k < best.length; k += 1) {
      counts[k] = (counts[k] ?? 0) + 1;
      if (k > 0) gaps[k]!.push(best[k]! - best[k - 1]!);
    }
  }

  const medians = gaps.map((list, k) => {
    if (k === 0 || list.length === 0) return null;
    const sorted = [...list].sort((a, b) => a - b);
    const mid = sorted.length / 2;
    const ms = sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    return Math.round(ms) / 1000;
  });
  return { counts, medians, people: new Set(assigned.map((a) => a.person)).size };
}
