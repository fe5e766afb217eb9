/** The OpenAPI 3.1 document, generated from the same zod schemas the routes validate with. */
import { z } from 'zod';
import { shareInputSchema, siteInputSchema } from './admin/admin-routes';
import { mergeInputSchema, splitInputSchema } from './admin/people-routes';
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
    '/admin/sites/{siteId}/people': { get: { summary: 'Explain the person of ?userId= or ?anonymousId=: its ids and why', security: [{ admin: [] }], responses: { '200': { description: 'Explanation' }, '404': { description: 'No event carries that id' } } } },
    '/admin/sites/{siteId}/people/merge': { post: { summary: 'Merge two known users (recorded, reversible)', security: [{ admin: [] }], requestBody: jsonBody('MergeInput'), responses: { '201': { description: 'Merged' }, '409': { description: 'Already one person' } } } },
    '/admin/sites/{siteId}/people/split': { post: { summary: 'Take a wrongly merged user or device id back out', security: [{ admin: [] }], requestBody: jsonBody('SplitInput'), responses: { '201': { description: 'Split' }, '409': { description: 'Nothing to split' } } } },
    '/admin/sites/{siteId}/people/actions/{actionId}': { delete: { summary: 'Revert a merge or split', security: [{ admin: [] }], responses: { '200': { description: 'Reverted' }, '404': { description: 'No such active action' } } } },
    '/admin/sites/{siteId}/identity': { get: { summary: 'Identity counts of the site', security: [{ admin: [] }], responses: { '200': { description: 'Counts' } } } },
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
        MergeInput: schema(mergeInputSchema),
        SplitInput: schema(splitInputSchema),
      },
    },
  };
}
