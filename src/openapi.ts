/**
 * The OpenAPI 3.0 document, generated from the same zod schemas the routes validate with: every
 * schema registered with `.meta({ id })` becomes a component.
 */
import { z } from 'zod';
import './admin/admin-routes';
import { backtestInputSchema, channelInputSchema } from './admin/alert-routes';
import {
  adminTokenSchema,
  ingestSettingsSchema,
  resubmitSchema,
  rotateKeySchema,
} from './admin/ingest-admin-routes';
import { mergeInputSchema, splitInputSchema } from './admin/people-routes';
import { alertConfigInputSchema, goalConfigInputSchema } from './alerts/config';
import './funnel/definition';
import './ingest/schema';

/** Schemas that routes validate with but that carry no `.meta({ id })` of their own. */
const NAMED_SCHEMAS: Record<string, z.ZodType> = {
  AlertConfigInput: alertConfigInputSchema,
  AlertGoalConfigInput: goalConfigInputSchema,
  AlertChannelInput: channelInputSchema,
  AlertBacktestInput: backtestInputSchema,
  IngestSettings: ingestSettingsSchema,
  Resubmit: resubmitSchema,
  RotateWriteKey: rotateKeySchema,
  AdminTokenInput: adminTokenSchema,
  MergeInput: mergeInputSchema,
  SplitInput: splitInputSchema,
};
for (const [id, schema] of Object.entries(NAMED_SCHEMAS)) {
  if (!z.globalRegistry.has(schema)) z.globalRegistry.add(schema, { id });
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

const json = (schema: unknown) => ({ 'application/json': { schema } });

const error = (description: string) => ({ description, content: json(ref('Error')) });

const ingestResponses = {
  '200': {
    description: 'The body was usable; per-event results',
    content: json(ref('IngestResponse')),
  },
  '400': error('Nothing in the body was usable'),
  '401': error('Missing or unknown write key or token'),
  '403': error('Origin not allowed for this site'),
  '413': error('Body over 500 KB or over 1,000 events'),
  '415': error('Unsupported Content-Encoding'),
  '429': error('Rate limited; wait Retry-After seconds'),
  '503': error('Storage failed; retry with the same message ids'),
};

const body = (id: string) => ({
  required: true,
  content: { 'application/json': { schema: ref(id) }, 'text/plain': { schema: ref(id) } },
});

const adminResponses = (ok: string) => ({
  '200': { description: ok },
  '400': error('Invalid input'),
  '401': error('Missing or invalid admin token'),
  '403': error('The token may not act on that site'),
  '404': error('No such site or object'),
});

const siteParam = { name: 'siteId', in: 'path', required: true, schema: { type: 'string' } };

const pathParams = (path: string) =>
  [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ ...siteParam, name }));

/** An admin operation on `path`, with an optional JSON body schema id. */
const adminOperation = (path: string, summary: string, bodyId?: string) => ({
  summary,
  security: [{ admin: [] }],
  parameters: pathParams(path),
  ...(bodyId ? { requestBody: body(bodyId) } : {}),
  responses: adminResponses('OK'),
});

/** Goal versions, rebuilds, the event catalogue and people lists (docs/API.md). */
function funnelAdminPaths(): Record<string, unknown> {
  const goal = '/admin/sites/{siteId}/goals/{goalId}';
  const people = adminOperation(`${goal}/people`, 'People who reached a step but not the next');
  people.parameters.push({ ...siteParam, name: 'step', in: 'query' });
  return {
    [`${goal}/versions`]: {
      get: adminOperation(`${goal}/versions`, 'Every version of a goal, with notes'),
    },
    [`${goal}/people`]: { get: people },
    '/admin/sites/{siteId}/rebuild': {
      post: adminOperation(
        '/admin/sites/{siteId}/rebuild',
        "Rebuild every goal's progress from stored events",
      ),
    },
    '/admin/sites/{siteId}/catalogue': {
      get: adminOperation(
        '/admin/sites/{siteId}/catalogue',
        'Event names, page paths and property keys seen',
      ),
    },
  };
}

/** Rejected events, ingest settings, write keys, admin tokens, audit, person data. */
function ingestAdminPaths(): Record<string, unknown> {
  const site = '/admin/sites/{siteId}';
  const op = adminOperation;
  return {
    [`${site}/rejected/resubmit`]: {
      post: op(
        `${site}/rejected/resubmit`,
        'Re-submit rejected events, as stored or corrected',
        'Resubmit',
      ),
    },
    [`${site}/ingest-settings`]: {
      get: op(`${site}/ingest-settings`, 'Ingest settings of a site'),
      patch: op(`${site}/ingest-settings`, 'Change ingest settings', 'IngestSettings'),
    },
    [`${site}/write-keys`]: { get: op(`${site}/write-keys`, 'Write keys (ids only)') },
    [`${site}/write-keys/rotate`]: {
      post: op(
        `${site}/write-keys/rotate`,
        'New write key; old keys expire after a grace period',
        'RotateWriteKey',
      ),
    },
    [`${site}/write-keys/{keyId}`]: {
      delete: op(`${site}/write-keys/{keyId}`, 'Revoke a write key'),
    },
    [`${site}/people/{id}`]: {
      get: op(`${site}/people/{id}`, "Export one person's data by any of their ids"),
      delete: op(`${site}/people/{id}`, "Erase one person's data from every store"),
    },
    '/admin/tokens': { post: op('/admin/tokens', 'Create a named admin token', 'AdminTokenInput') },
    '/admin/tokens/{name}': { delete: op('/admin/tokens/{name}', 'Revoke an admin token') },
    '/admin/audit': { get: op('/admin/audit', 'Audit log of admin changes (?site, ?limit)') },
  };
}

/** Explain, merge, split and revert people (docs/IDENTITY.md). */
function peoplePaths(): Record<string, unknown> {
  const people = '/admin/sites/{siteId}/people';
  const op = adminOperation;
  return {
    [people]: { get: op(people, 'Explain the person of ?userId= or ?anonymousId=: ids and why') },
    [`${people}/merge`]: {
      post: op(`${people}/merge`, 'Merge two known users (recorded, reversible)', 'MergeInput'),
    },
    [`${people}/split`]: {
      post: op(`${people}/split`, 'Take a wrongly merged id back out', 'SplitInput'),
    },
    [`${people}/actions/{actionId}`]: {
      delete: op(`${people}/actions/{actionId}`, 'Revert a merge or split'),
    },
    '/admin/sites/{siteId}/identity': {
      get: op('/admin/sites/{siteId}/identity', 'Identity counts of the site'),
    },
  };
}

/** Step-health alert routes (docs/ALERTS.md). */
function alertPaths(): Record<string, unknown> {
  const alerts = '/admin/sites/{siteId}/alerts';
  const goalConfig = '/admin/sites/{siteId}/goals/{goalId}/alerts/config';
  return {
    [`${alerts}/config`]: {
      get: adminOperation(`${alerts}/config`, 'The detector config: stored, resolved, per goal'),
      put: adminOperation(`${alerts}/config`, 'Set the detector config', 'AlertConfigInput'),
    },
    [goalConfig]: {
      get: adminOperation(goalConfig, "A goal's overrides and the config its checks run with"),
      put: adminOperation(goalConfig, "Set a goal's detector overrides", 'AlertGoalConfigInput'),
    },
    [`${alerts}/channels`]: {
      get: adminOperation(`${alerts}/channels`, 'List alert channels (no secrets)'),
      post: adminOperation(
        `${alerts}/channels`,
        'Add a webhook, Slack or PagerDuty channel',
        'AlertChannelInput',
      ),
    },
    [`${alerts}/channels/{channelId}`]: {
      delete: adminOperation(`${alerts}/channels/{channelId}`, 'Disable a channel'),
    },
    [alerts]: { get: adminOperation(alerts, 'Open alerts') },
    [`${alerts}/history`]: {
      get: adminOperation(`${alerts}/history`, 'Alert history (filter by goal)'),
    },
    [`${alerts}/deliveries`]: {
      get: adminOperation(`${alerts}/deliveries`, 'Outbox deliveries and their attempts'),
    },
    [`${alerts}/backtest`]: {
      post: adminOperation(
        `${alerts}/backtest`,
        'Dry-run the checks over stored events',
        'AlertBacktestInput',
      ),
    },
  };
}

/** Builds the document; called once per isolate. */
export function buildOpenApi(): Record<string, unknown> {
  const generated = z.toJSONSchema(z.globalRegistry, {
    target: 'openapi-3.0',
    unrepresentable: 'any',
    uri: (id) => `#/components/schemas/${id}`,
  }).schemas;
  // OpenAPI 3.0 schema objects have no `$id`; the component name already is the id.
  const schemas = Object.fromEntries(
    Object.entries(generated).map(([id, { $id: _id, ...schema }]) => [id, schema]),
  );

  const paths: Record<string, unknown> = {
    '/v1/batch': {
      post: {
        summary: 'Send a batch of events (also /v1/b)',
        security: [{ writeKey: [] }],
        requestBody: body('Batch'),
        responses: ingestResponses,
      },
    },
    '/v1/import': {
      post: {
        summary: 'Historical import (every event time accepted), admin token',
        security: [{ admin: [] }],
        parameters: [{ name: 'site', in: 'query', required: true, schema: { type: 'string' } }],
        requestBody: body('Batch'),
        responses: { ...ingestResponses, '404': error('No such site') },
      },
    },
    '/admin/sites/{siteId}': {
      put: {
        summary: 'Create or update a site',
        security: [{ admin: [] }],
        parameters: [siteParam],
        requestBody: body('SiteInput'),
        responses: { ...adminResponses('Saved'), '409': error('Write key taken') },
      },
    },
    '/admin/sites/{siteId}/goals': {
      get: {
        summary: 'Goals with their current version',
        security: [{ admin: [] }],
        parameters: [siteParam],
        responses: adminResponses('Goals'),
      },
    },
    '/admin/sites/{siteId}/goals/{goalId}': {
      put: {
        summary: 'Create a goal or a new version of it',
        security: [{ admin: [] }],
        parameters: [siteParam, { ...siteParam, name: 'goalId' }],
        requestBody: body('GoalInput'),
        responses: adminResponses('Saved'),
      },
    },
    '/admin/sites/{siteId}/shares': {
      get: {
        summary: "List the site's shares (never their tokens)",
        security: [{ admin: [] }],
        parameters: [siteParam],
        responses: adminResponses('{ shares: [{ id, goalIds, createdAt, expiresAt, revokedAt }] }'),
      },
      post: {
        summary: 'Create a read-only share',
        security: [{ admin: [] }],
        parameters: [siteParam],
        requestBody: body('ShareInput'),
        responses: { ...adminResponses('Existing share'), '201': { description: 'Created' } },
      },
    },
    '/admin/sites/{siteId}/shares/{shareId}': {
      delete: {
        summary: 'Revoke a share',
        security: [{ admin: [] }],
        parameters: [siteParam, { ...siteParam, name: 'shareId' }],
        responses: adminResponses('Revoked'),
      },
    },
    '/admin/sites/{siteId}/pending': {
      get: {
        summary: 'Pending batches only, without counting stored events: what to poll until written',
        security: [{ admin: [] }],
        parameters: [siteParam],
        responses: adminResponses('Pending batches'),
      },
    },
    '/admin/sites/{siteId}/status': {
      get: {
        summary: 'Stored events, pending batches, rejected events',
        security: [{ admin: [] }],
        parameters: [siteParam],
        responses: adminResponses('Status'),
      },
    },
    '/admin/sites/{siteId}/rejected': {
      get: {
        summary: 'Rejected events with their reason codes',
        security: [{ admin: [] }],
        parameters: [siteParam],
        responses: adminResponses('Rejected events'),
      },
    },
    '/r/{token}/{goalId}': {
      get: {
        summary: 'Funnel report (html, json or csv)',
        parameters: [
          { name: 'token', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'goalId', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'from', in: 'query', schema: { type: 'string' } },
          { name: 'to', in: 'query', schema: { type: 'string' } },
          { name: 'tz', in: 'query', schema: { type: 'string' } },
          {
            name: 'format',
            in: 'query',
            schema: { type: 'string', enum: ['', 'html', 'json', 'csv'] },
          },
          ...['mode', 'window', 'breakdown', 'top', 'interval', 'version'].map((name) => ({
            name,
            in: 'query',
            schema: { type: 'string' },
          })),
          {
            name: 'filter',
            in: 'query',
            schema: { type: 'array', items: { type: 'string' } },
            description: '<key>:<value>, or <key> alone for people without a value; repeatable',
          },
        ],
        responses: {
          '200': { description: 'The report' },
          '304': { description: 'Not modified (If-None-Match)' },
          '400': error('Invalid range, time, time zone, format or view parameter'),
          '404': error('Unknown, revoked or expired share, or no such goal'),
          '503': error('Too many custom views wait for this site; retry after Retry-After'),
        },
      },
    },
    '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'OK' } } } },
    ...funnelAdminPaths(),
    ...ingestAdminPaths(),
    ...peoplePaths(),
    ...alertPaths(),
  };
  for (const route of ['track', 'identify', 'page', 'screen', 'group', 'alias']) {
    paths[`/v1/${route}`] = {
      post: {
        summary: `Send one ${route} call (also /v1/${route[0]})`,
        security: [{ writeKey: [] }],
        requestBody: body('Event'),
        responses: ingestResponses,
      },
    };
  }

  return {
    openapi: '3.0.3',
    info: {
      title: 'goalstep',
      version: '0.1.0',
      description: 'Goal-step funnel tracking; see docs/API.md.',
    },
    paths,
    components: {
      securitySchemes: {
        writeKey: { type: 'http', scheme: 'basic', description: 'write key as user name' },
        admin: { type: 'http', scheme: 'bearer' },
      },
      schemas: {
        ...schemas,
        Error: {
          type: 'object',
          required: ['code', 'message'],
          properties: { code: { type: 'string' }, message: { type: 'string' } },
        },
      },
    },
  };
}
