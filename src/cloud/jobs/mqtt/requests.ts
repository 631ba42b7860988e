/**
 * Request payloads of the Jobs MQTT API (docs/protocol.md, Requests and replies) as zod schemas. A refused
 * request is answered InvalidRequest with the first problem, which always names the field.
 */
import { z } from 'zod';
import { JOB_ID_PATTERN } from '../../../shared/topics.ts';
import { DEVICE_SETTABLE_STATUSES } from '../lifecycle/state-machine.ts';
import type { ExecutionStatus } from '../types.ts';

export const MAX_CLIENT_TOKEN = 64;
const MAX_STATUS_DETAILS = 10;
const STATUS_DETAIL_KEY = /^[a-zA-Z0-9:_-]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** statusDetails limits (docs/protocol.md, Limits); returns the problem, or undefined when valid. */
export function statusDetailsProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'statusDetails must be an object of string values';
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_STATUS_DETAILS)
    return `statusDetails may hold at most ${MAX_STATUS_DETAILS} entries`;
  for (const [k, v] of entries) {
    if (!STATUS_DETAIL_KEY.test(k))
      return `statusDetails key ${JSON.stringify(k)} must match ${STATUS_DETAIL_KEY.source}`;
    if (typeof v !== 'string') return `statusDetails.${k} must be a string`;
    if (v.length < 1 || v.length > 1024) return `statusDetails.${k} must be 1–1024 characters`;
    if (CONTROL_CHARS.test(v)) return `statusDetails.${k} must not contain control characters`;
  }
  return undefined;
}

/** `null` counts as absent, as it always has for these requests. */
const optional = <T extends z.ZodType>(schema: T) =>
  z.union([z.null().transform(() => undefined), schema.optional()]);

const CLIENT_TOKEN_MESSAGE = `clientToken must be a string of 1–${MAX_CLIENT_TOKEN} characters`;
export const clientTokenSchema = optional(
  z
    .string({ error: CLIENT_TOKEN_MESSAGE })
    .min(1, CLIENT_TOKEN_MESSAGE)
    .max(MAX_CLIENT_TOKEN, CLIENT_TOKEN_MESSAGE),
);

const statusDetails = optional(
  z.unknown().transform((v, c) => {
    const problem = statusDetailsProblem(v);
    if (problem !== undefined) {
      c.issues.push({ code: 'custom', input: v, message: problem });
      return z.NEVER;
    }
    return { ...(v as Record<string, string>) };
  }),
);

/** Devices send numbers or numeric strings (docs/protocol.md, Wire format); both are accepted. */
const wholeNumber = (field: string, min: number) =>
  optional(
    z.unknown().transform((v, c) => {
      const n =
        typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < min) {
        c.issues.push({
          code: 'custom',
          input: v,
          message: `${field} must be an integer ≥ ${min} (number or numeric string)`,
        });
        return z.NEVER;
      }
      return n;
    }),
  );

const STEP_TIMEOUT_MESSAGE = 'stepTimeoutInMinutes must be an integer from 1 to 10080, or -1';
const stepTimeout = optional(
  z.unknown().transform((v, c) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || !(v === -1 || (v >= 1 && v <= 10080))) {
      c.issues.push({ code: 'custom', input: v, message: STEP_TIMEOUT_MESSAGE });
      return z.NEVER;
    }
    return v;
  }),
);

const bool = (field: string) => optional(z.boolean({ error: `${field} must be a boolean` }));

export const GetPendingRequest = z.object({ clientToken: clientTokenSchema });

export const StartNextRequest = z.object({
  clientToken: clientTokenSchema,
  statusDetails,
  stepTimeoutInMinutes: stepTimeout,
});

export const DescribeRequest = z.object({
  clientToken: clientTokenSchema,
  executionNumber: wholeNumber('executionNumber', 1),
  includeJobDocument: bool('includeJobDocument'),
});

const STATUS_MESSAGE = `status must be one of ${DEVICE_SETTABLE_STATUSES.join(', ')}`;
export const UpdateRequest = z.object({
  status: z.unknown().transform((v, c): ExecutionStatus => {
    if (v === undefined || v === null) {
      c.issues.push({ code: 'custom', input: v, message: 'status is required' });
      return z.NEVER;
    }
    if (typeof v !== 'string' || !(DEVICE_SETTABLE_STATUSES as readonly string[]).includes(v)) {
      c.issues.push({ code: 'custom', input: v, message: STATUS_MESSAGE });
      return z.NEVER;
    }
    return v as ExecutionStatus;
  }),
  clientToken: clientTokenSchema,
  statusDetails,
  expectedVersion: wholeNumber('expectedVersion', 0),
  executionNumber: wholeNumber('executionNumber', 1),
  includeJobExecutionState: bool('includeJobExecutionState'),
  includeJobDocument: bool('includeJobDocument'),
  stepTimeoutInMinutes: stepTimeout,
});

export const JOB_ID_MESSAGE = `jobId must match ${JOB_ID_PATTERN.source}`;

/** The first problem of a failed parse, or the parsed request. */
export function parseWith<T extends z.ZodType>(
  schema: T,
  value: unknown,
): { ok: true; value: z.output<T> } | { ok: false; message: string } {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const field = issue?.path.map(String).join('.') ?? '';
  const message = issue?.message ?? 'invalid request';
  // Our messages name their field; zod's own (wrong type of a whole field) get it prefixed.
  return { ok: false, message: field !== '' && !message.includes(field) ? `${field}: ${message}` : message };
}
