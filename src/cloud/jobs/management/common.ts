/**
 * Validation and lookups shared by the control-plane operations: AWS's name patterns (named in every
 * message), "does not exist" errors, and keyset pagination with opaque tokens.
 */
import { JOB_ID_PATTERN, THING_NAME_PATTERN } from '../../../shared/topics.ts';
import type { JobsContext } from '../context.ts';
import type { Seq } from '../store/store.ts';
import {
  ControlPlaneError,
  type ControlPlaneErrorCode,
  type JobRecord,
  type Page,
  type PageRequest,
  type ThingGroupRecord,
  type ThingRecord,
} from '../types.ts';

export const GROUP_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
const MAX_PAGE = 250;

export const cpErr = (code: ControlPlaneErrorCode, message: string) => new ControlPlaneError(code, message);

export function requireThingName(name: unknown, field = 'thingName'): string {
  if (typeof name !== 'string' || !THING_NAME_PATTERN.test(name)) {
    throw cpErr('InvalidRequestException', `${field} must match ${THING_NAME_PATTERN.source}`);
  }
  return name;
}

export function requireGroupName(name: unknown): string {
  if (typeof name !== 'string' || !GROUP_NAME_PATTERN.test(name)) {
    throw cpErr('InvalidRequestException', `thingGroupName must match ${GROUP_NAME_PATTERN.source}`);
  }
  return name;
}

export function requireJobId(jobId: unknown, field = 'jobId'): string {
  if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId)) {
    throw cpErr('InvalidRequestException', `${field} must match ${JOB_ID_PATTERN.source}`);
  }
  return jobId;
}

export function thingOrThrow(ctx: JobsContext, name: string): ThingRecord {
  const t = ctx.store.getThing(requireThingName(name));
  if (t === undefined) throw cpErr('ResourceNotFoundException', `thing ${name} does not exist`);
  return t;
}

export function groupOrThrow(ctx: JobsContext, name: string): ThingGroupRecord {
  const g = ctx.store.getGroup(requireGroupName(name));
  if (g === undefined) throw cpErr('ResourceNotFoundException', `thing group ${name} does not exist`);
  return g;
}

export function jobOrThrow(ctx: JobsContext, jobId: string): JobRecord {
  const j = ctx.store.getJob(requireJobId(jobId));
  if (j === undefined) throw cpErr('ResourceNotFoundException', `job ${jobId} does not exist`);
  return j;
}

/** One page of rows after the token's position; the token is opaque (base64url JSON). */
export function pageOf<T>(
  page: PageRequest | undefined,
  fetch: (after: number, limit: number) => Seq<T>[],
): Page<T> {
  const max = page?.maxResults ?? MAX_PAGE;
  if (!Number.isInteger(max) || max < 1 || max > MAX_PAGE) {
    throw cpErr('InvalidRequestException', `maxResults must be an integer from 1 to ${MAX_PAGE}`);
  }
  const after = page?.nextToken === undefined || page.nextToken === '' ? 0 : decodeToken(page.nextToken);
  const rows = fetch(after, max + 1);
  const items = rows.slice(0, max);
  const result: Page<T> = { items: items.map((r) => r.item) };
  const last = items[items.length - 1];
  if (rows.length > max && last !== undefined) result.nextToken = encodeToken(last.seq);
  return result;
}

function encodeToken(seq: number): string {
  return Buffer.from(JSON.stringify({ v: 1, after: seq })).toString('base64url');
}

function decodeToken(token: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as {
      v?: unknown;
      after?: unknown;
    };
    if (
      parsed.v === 1 &&
      typeof parsed.after === 'number' &&
      Number.isSafeInteger(parsed.after) &&
      parsed.after >= 0
    ) {
      return parsed.after;
    }
  } catch {
    // fall through
  }
  throw cpErr('InvalidRequestException', 'nextToken is not valid');
}
