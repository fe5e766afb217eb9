/** Whether an event satisfies a step: its name, page path or URL, property filters or trait. */
import type { EventMatcher, StepDefinition, StepFilter } from './definition';

/** The part of an event the engine reads. For `identify` calls, `properties` holds the traits. */
export interface FunnelEvent {
  messageId: string;
  ts: number;
  type: string;
  event: string | null;
  properties: Record<string, unknown> | null;
}

/** Tracked events: the calls a step, an exclusion or strict ordering looks at. */
export const isTracked = (event: FunnelEvent) =>
  event.type === 'track' || event.type === 'page' || event.type === 'screen';

/**
 * A property's own value, or undefined: tracked names like `constructor` or `__proto__` must not
 * read Object.prototype members.
 */
export const ownValue = (bag: Record<string, unknown> | null | undefined, key: string): unknown =>
  bag && Object.hasOwn(bag, key) ? bag[key] : undefined;

/** Applies one filter to a property bag; a missing property fails all but `neq`. */
export function matchesFilter(
  properties: Record<string, unknown> | null,
  filter: StepFilter,
): boolean {
  const actual = ownValue(properties, filter.property);
  const present = actual !== undefined && actual !== null;
  switch (filter.op) {
    case 'set':
      return present;
    case 'eq':
      return present && String(actual) === String(filter.value);
    case 'neq':
      return !present || String(actual) !== String(filter.value);
    case 'contains':
      return typeof actual === 'string' && actual.includes(String(filter.value));
    case 'in':
      return (
        present && Array.isArray(filter.value) && filter.value.map(String).includes(String(actual))
      );
    case 'gt':
      return (
        typeof actual === 'number' && typeof filter.value === 'number' && actual > filter.value
      );
    case 'lt':
      return (
        typeof actual === 'number' && typeof filter.value === 'number' && actual < filter.value
      );
  }
}

/** A `*` wildcard pattern as an anchored regular expression; nothing else is special. */
function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`, 's');
}

const patterns = new Map<string, RegExp>();
function matchesPattern(value: unknown, pattern: string): boolean {
  if (typeof value !== 'string') return false;
  let regexp = patterns.get(pattern);
  if (!regexp) {
    regexp = patternToRegExp(pattern);
    patterns.set(pattern, regexp);
  }
  return regexp.test(value);
}

/** True when a tracked event satisfies one matcher. */
export function matchesMatcher(event: FunnelEvent, matcher: EventMatcher): boolean {
  if (!isTracked(event)) return false;
  if (
    matcher.type &&
    event.type !== matcher.type &&
    !(matcher.type === 'page' && event.type === 'screen')
  ) {
    return false;
  }
  if (matcher.event !== undefined && event.event !== matcher.event) return false;
  if (matcher.path !== undefined || matcher.url !== undefined) {
    if (event.type === 'track') return false;
    if (matcher.path !== undefined && !matchesPattern(event.properties?.path, matcher.path))
      return false;
    if (matcher.url !== undefined && !matchesPattern(event.properties?.url, matcher.url))
      return false;
  }
  return (matcher.where ?? []).every((filter) => matchesFilter(event.properties, filter));
}

/** True when the event is one an event step counts (trait steps are matched by the engine). */
export function matchesStep(event: FunnelEvent, step: StepDefinition): boolean {
  if (step.trait) return false;
  if (step.anyOf) return step.anyOf.some((matcher) => matchesMatcher(event, matcher));
  return matchesMatcher(event, step);
}
