/** Whether an event satisfies a step: its name and its property filters. */
import type { StepDefinition, StepFilter } from './definition';

/** The part of an event the engine reads. */
export interface FunnelEvent {
  messageId: string;
  ts: number;
  type: string;
  event: string | null;
  properties: Record<string, unknown> | null;
}

function matchesFilter(properties: Record<string, unknown> | null, filter: StepFilter): boolean {
  const actual = properties?.[filter.property];
  switch (filter.op) {
    case 'set':
      return actual !== undefined && actual !== null;
    case 'eq':
      return actual !== undefined && String(actual) === String(filter.value);
    case 'neq':
      return actual === undefined || String(actual) !== String(filter.value);
    case 'contains':
      return typeof actual === 'string' && actual.includes(String(filter.value));
    case 'in':
      return Array.isArray(filter.value) && filter.value.map(String).includes(String(actual));
    case 'gt':
      return typeof actual === 'number' && actual > Number(filter.value);
    case 'lt':
      return typeof actual === 'number' && actual < Number(filter.value);
  }
}

/** True when the event is one the step counts: a track event of that name, or a page/screen view of that name, with every filter satisfied. */
export function matchesStep(event: FunnelEvent, step: StepDefinition): boolean {
  if (event.type !== 'track' && event.type !== 'page' && event.type !== 'screen') return false;
  if (event.event !== step.event) return false;
  return (step.where ?? []).every((filter) => matchesFilter(event.properties, filter));
}
