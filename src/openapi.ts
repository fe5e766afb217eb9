/** The OpenAPI 3.1 document, generated from the same zod schemas the routes validate with. */
import { z } from 'zod';
import { shareInputSchema, siteInputSchema } from './admin/admin-routes';
import { backtestInputSchema, channelInputSchema } from './admin/alert-routes';
import { alertConfigInputSchema } from './alerts/config';
import { goalInputSchema } from './funnel/definition';
import { batchBodySchema, ingestResponseSchema, rawEventSchema } from './ingest/schema';

const schema = (s: z.ZodType) => z.toJSONSchema(s, { target: 'openapi-3.0', unrepresentable: 'any' });

const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
};

const ingestResponses = {
  '200': { description: 'Usable body', content: { 'application/json': { schema: { $ref: '#/components/schemas/IngestResponse' } } } },
  '400': { description: 'Nothing in the body was usable', content: { 'application/json': { schema: errorSchema } } },
  '401': { description: 'Missing or unknown write key', content: { 'application/json': { schema: errorSchema } } },
  '413': { description: 'Body over 500 KB', content: { 'application/json': { schema: errorSchema } } },
  '503': { description: 'Storage failed; retry with the same message ids', content: { 'application/json': { schema: errorSchema } } },
};

const jsonBody = (ref: string) => ({
  required: true,
  content: {
    'application/json': { schema: { $ref: `#/components/schemas/${ref}` } },
    'text/plain': { schema: { $ref: `#/components/schemas/${ref}` } },
  },
});

/** Builds the document; called once per isolate. */
export function buildOpenApi(): Record<string, unknown> {
  const singleRoutes = ['track', 'identify', 'page', 'screen', 'group', 'alias'];
  const paths: Record<string, unknown> = {
    '/v1/batch': { post: { summary: 'Send a batch of events', security: [{ writeKey: [] }], requestBody: jsonBody('Batch'), responses: ingestResponses } },
    '/v1/import': { post: { summary: 'Historical import (any event time)', security: [{ admin: [] }], parameters: [{ name: 'site', in: 'query', required: true, schema: { type: 'string' } }], requestBody: jsonBody('Batch'), responses: ingestResponses } },
    '/admin/sites/{siteId}': { put: { summary: 'Create or update a site', security: [{ admin: [] }], requestBody: jsonBody('SiteInput'), responses: { '200': { description: 'Saved' } } } },
    '/admin/sites/{siteId}/goals/{goalId}': { put: { summary: 'Create a goal or a new version of it', security: [{ admin: [] }], requestBody: jsonBody('GoalInput'), responses: { '200': { description: 'Saved' } } } },
    '/admin/sites/{siteId}/shares': { post: { summary: 'Create a read-only share', security: [{ admin: [] }], requestBody: jsonBody('ShareInput'), responses: { '201': { description: 'Created' } } } },
    '/r/{token}/{goalId}': { get: { summary: 'Funnel report (html, json or csv)', responses: { '200': { description: 'Report' }, '304': { description: 'Not modified' }, '404': { description: 'Unknown, revoked or expired token' } } } },
  };
  const admin = (summary: string, body?: string) => ({
    summary,
    security: [{ admin: [] }],
    ...(body ? { requestBody: jsonBody(body) } : {}),
    responses: { '200': { description: 'OK' }, '400': { description: 'Invalid input' } },
  });
  const alerts = '/admin/sites/{siteId}/alerts';
  paths[`${alerts}/config`] = {
    get: admin('The detector config: stored and resolved'),
    put: admin('Set the detector config (docs/ALERTS.md)', 'AlertConfigInput'),
  };
  paths['/admin/sites/{siteId}/goals/{goalId}/alerts/config'] = {
    put: admin("Set a goal's detector overrides", 'AlertConfigInput'),
  };
  paths[`${alerts}/channels`] = {
    get: admin('List alert channels (no secrets)'),
    post: admin('Add a webhook, Slack or PagerDuty channel', 'AlertChannelInput'),
  };
  paths[`${alerts}/channels/{channelId}`] = { delete: admin('Disable a channel') };
  paths[alerts] = { get: admin('Open alerts') };
  paths[`${alerts}/history`] = { get: admin('Alert history (filter by goal)') };
  paths[`${alerts}/deliveries`] = { get: admin('Outbox deliveries and their attempts') };
  paths[`${alerts}/backtest`] = {
    post: admin('Dry-run the checks over stored events', 'AlertBacktestInput'),
  };
  for (const route of singleRoutes) {
    paths[`/v1/${route}`] = { post: { summary: `Send one ${route} event (also /v1/${route[0]})`, security: [{ writeKey: [] }], requestBody: jsonBody('Event'), responses: ingestResponses } };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'goalstep', version: '0.1.0', description: 'Goal-step funnel tracking. See docs/API.md.' },
    paths,
    components: {
      securitySchemes: {
        writeKey: { type: 'http', scheme: 'basic', description: 'write key as user name, empty password' },
        admin: { type: 'http', scheme: 'bearer' },
      },
      schemas: {
        Event: schema(rawEventSchema),
        Batch: schema(batchBodySchema),
        IngestResponse: schema(ingestResponseSchema),
        GoalInput: schema(goalInputSchema),
        SiteInput: schema(siteInputSchema),
        ShareInput: schema(shareInputSchema),
        AlertConfigInput: schema(alertConfigInputSchema),
        AlertChannelInput: schema(channelInputSchema),
        AlertBacktestInput: schema(backtestInputSchema),
      },
    },
  };
}
