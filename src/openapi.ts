/** The OpenAPI 3.1 document, generated from the same zod schemas the routes validate with. */
import { z } from 'zod';
import { shareInputSchema, siteInputSchema } from './admin/admin-routes';
import {
  adminTokenSchema,
  ingestSettingsSchema,
  resubmitSchema,
  rotateKeySchema,
} from './admin/ingest-admin-routes';
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
  '403': { description: 'Origin not allowed for this site', content: { 'application/json': { schema: errorSchema } } },
  '413': { description: 'Body over 500 KB', content: { 'application/json': { schema: errorSchema } } },
  '415': { description: 'Unsupported Content-Encoding', content: { 'application/json': { schema: errorSchema } } },
  '429': { description: 'Rate limited; wait Retry-After seconds', content: { 'application/json': { schema: errorSchema } } },
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
    '/admin/sites/{siteId}/rejected': { get: { summary: 'Rejected and filtered events with reason counts (?disposition, ?code, ?limit)', security: [{ admin: [] }], responses: { '200': { description: 'Rows and counts' } } } },
    '/admin/sites/{siteId}/rejected/resubmit': { post: { summary: 'Re-submit rejected events, as stored or corrected', security: [{ admin: [] }], requestBody: jsonBody('Resubmit'), responses: ingestResponses } },
    '/admin/sites/{siteId}/ingest-settings': {
      get: { summary: 'Ingest settings of a site', security: [{ admin: [] }], responses: { '200': { description: 'Settings' } } },
      patch: { summary: 'Change ingest settings', security: [{ admin: [] }], requestBody: jsonBody('IngestSettings'), responses: { '200': { description: 'Updated' } } },
    },
    '/admin/sites/{siteId}/write-keys': { get: { summary: 'Write keys (ids only)', security: [{ admin: [] }], responses: { '200': { description: 'Keys' } } } },
    '/admin/sites/{siteId}/write-keys/rotate': { post: { summary: 'New write key; keys in use expire after the grace period', security: [{ admin: [] }], requestBody: jsonBody('RotateWriteKey'), responses: { '201': { description: 'Created' } } } },
    '/admin/sites/{siteId}/write-keys/{keyId}': { delete: { summary: 'Revoke a write key', security: [{ admin: [] }], responses: { '200': { description: 'Revoked' } } } },
    '/admin/sites/{siteId}/people/{id}': {
      get: { summary: "Export one person's data by any of their ids", security: [{ admin: [] }], responses: { '200': { description: 'Data from every store' } } },
      delete: { summary: "Erase one person's data from every store", security: [{ admin: [] }], responses: { '200': { description: 'Rows deleted per store' } } },
    },
    '/admin/tokens': { post: { summary: 'Create a named admin token (all-sites tokens only)', security: [{ admin: [] }], requestBody: jsonBody('AdminTokenInput'), responses: { '201': { description: 'Created; the token is shown once' } } } },
    '/admin/tokens/{name}': { delete: { summary: 'Revoke an admin token', security: [{ admin: [] }], responses: { '200': { description: 'Revoked' } } } },
    '/admin/audit': { get: { summary: 'Audit log of admin changes (?site, ?limit)', security: [{ admin: [] }], responses: { '200': { description: 'Entries' } } } },
    '/r/{token}/{goalId}': { get: { summary: 'Funnel report (html, json or csv)', responses: { '200': { description: 'Report' }, '304': { description: 'Not modified' }, '404': { description: 'Unknown, revoked or expired token' } } } },
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
        IngestSettings: schema(ingestSettingsSchema),
        Resubmit: schema(resubmitSchema),
        RotateWriteKey: schema(rotateKeySchema),
        AdminTokenInput: schema(adminTokenSchema),
      },
    },
  };
}
