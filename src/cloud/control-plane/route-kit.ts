/**
 * What every control-plane route is made of: the route shape, request parsing with zod (messages name the
 * field and come back as InvalidRequestException), paging, labels and output conversions. Methods, paths,
 * query names, body members and response members are those of the @aws-sdk/client-iot operation schemas
 * (e.g. `CreateJob$ = { http: ['PUT', '/jobs/{jobId}', 200] }` and `CreateJobRequest$`). Timestamps go
 * out as epoch seconds (JSON numbers), restJson1's default timestamp format, so the SDK turns them into
 * Dates.
 */
import { z } from 'zod';
import type { JobsControlPlane, PageRequest } from '../jobs/types.ts';
import { ControlPlaneError } from './api-error.ts';

export interface RouteContext {
  controlPlane: JobsControlPlane;
  /** Epoch milliseconds. */
  now: () => number;
  iotEndpointAddress?: string;
  credentialsEndpointAddress?: string;
}

export interface ApiRequest {
  /** Path labels, percent-decoded. */
  labels: Record<string, string>;
  query: Record<string, string | string[]>;
  /** The parsed JSON body ({} when the body is empty). */
  body: unknown;
}

export interface Route {
  operation: string;
  method: string;
  pattern: string;
  /** May be async: CreateJob fetches a `documentSource` first. */
  handle(ctx: RouteContext, req: ApiRequest): unknown;
}

/** Query values arrive as strings; a repeated key (an array) is refused rather than guessed at. */
export const queryString = z.string({ error: 'expected a single value' });
/** maxResults: 1–250 for every list operation here (AWS IoT API reference, ListJobs et al.). */
const maxResultsQuery = queryString
  .regex(/^\d+$/, 'expected an integer')
  .transform(Number)
  .pipe(z.number().int().min(1).max(250));
export const booleanQuery = z
  .enum(['true', 'false'], { error: "expected 'true' or 'false'" })
  .transform((v) => v === 'true');
export const integerQuery = queryString.regex(/^\d+$/, 'expected an integer').transform(Number);
export const pageQuery = { maxResults: maxResultsQuery.optional(), nextToken: queryString.optional() };
export const stringMap = z.record(z.string(), z.string());
export const tagList = z.array(z.object({ Key: z.string(), Value: z.string().optional() }));

export function invalid(message: string): ControlPlaneError {
  return new ControlPlaneError('InvalidRequestException', message);
}

/** Validates `value`; a failure is an InvalidRequestException naming the field (`targets[0]: …`). */
function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue?.path.length
    ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
    : [];
  const field = path.join('.').replace(/\.\[/g, '[');
  throw invalid(`${field || where}: ${issue?.message ?? 'invalid'}`);
}

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('request body: expected a JSON object');
  }
  return parse(schema, body, 'request body');
}

export function parseQuery<S extends z.ZodRawShape>(
  shape: S,
  query: ApiRequest['query'],
): z.output<z.ZodObject<S>> {
  return parse(z.object(shape), query, 'query');
}

/** Members whose behaviour the local stack does not implement are refused by name, not ignored. */
export function refuseUnsupported(source: unknown, fields: readonly string[], where: string): void {
  if (typeof source !== 'object' || source === null) return;
  for (const field of fields) {
    const v = (source as Record<string, unknown>)[field];
    if (v !== undefined && v !== null) {
      throw invalid(`${field}: not supported by the local control plane (${where})`);
    }
  }
}

export function page(q: { maxResults?: number; nextToken?: string }): PageRequest {
  const p: PageRequest = {};
  if (q.maxResults !== undefined) p.maxResults = q.maxResults;
  if (q.nextToken !== undefined) p.nextToken = q.nextToken;
  return p;
}

export function label(req: Pick<ApiRequest, 'labels'>, name: string): string {
  const v = req.labels[name];
  if (v === undefined || v === '') throw invalid(`${name}: must not be empty`);
  return v;
}

/** `arn:aws:iot:<region>:<account>:thing/<name>` → `<name>`; a plain name passes through. */
export function nameFromArn(arnOrName: string, resource: 'thing' | 'thinggroup'): string {
  if (!arnOrName.startsWith('arn:')) return arnOrName;
  const m = /^arn:[^:]+:iot:[^:]*:[^:]*:([a-z]+)\/(.+)$/.exec(arnOrName);
  if (!m || m[1] !== resource) {
    throw invalid(
      `${resource === 'thing' ? 'thingArn' : 'thingGroupArn'}: not a ${resource} ARN: ${arnOrName}`,
    );
  }
  return m[2] ?? '';
}

/** Epoch milliseconds → epoch seconds (restJson1 default timestamp format). */
export function sec(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms / 1000;
}

/** Copies the defined members only (the SDK reads `null` as a value). */
export function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** DELETE of one named resource: its name is the path's one label, the answer `{}`. */
export function deleteRoute<Ctx>(
  operation: string,
  pattern: string,
  labelName: string,
  remove: (ctx: Ctx, name: string) => void,
): {
  operation: string;
  method: 'DELETE';
  pattern: string;
  handle(ctx: Ctx, req: Pick<ApiRequest, 'labels'>): object;
} {
  return {
    operation,
    method: 'DELETE',
    pattern,
    handle(ctx, req) {
      remove(ctx, label(req, labelName));
      return {};
    },
  };
}
