import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { errorMessage } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/log.ts';
import type { SessionTokenCheck } from '../credentials/session-tokens.ts';
import { ControlPlaneError, type JobsControlPlane } from '../jobs/types.ts';
import type { SecurityRegistry } from '../security/registry.ts';
import { parseQuery } from '../sigv4/verify.ts';
import { type ProvisioningContext, provisioningRouter } from './provisioning-routes.ts';
import { type ApiRequest, matchRoute, type RouteContext } from './routes.ts';
import { verifySigV4 } from './sigv4.ts';

/**
 * An HTTP server that speaks AWS IoT's control-plane REST-JSON API well enough that @aws-sdk/client-iot,
 * given `endpoint: <this server>`, works against the local Jobs service unchanged. Every request must
 * carry a valid SigV4 signature (signing name `iot`) made with the configured credentials.
 */

/** Largest request body accepted (a job document is ≤ 32 KB: docs/protocol.md, Limits; this leaves room). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Past this many bytes an oversized body is no longer drained but the connection is dropped. */
const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;
/** AWS signing name of the IoT control plane (@aws-sdk/client-iot auth scheme `aws.auth#sigv4`). */
export const IOT_SIGNING_NAME = 'iot';
/** botocore (boto3, the AWS CLI) signs the IoT control plane as `execute-api` (its model's signingName). */
const IOT_SIGNING_NAMES = new Set([IOT_SIGNING_NAME, 'execute-api']);

/** The signing name in the request's credential scope, when it is one the IoT control plane accepts. */
function signingNameOf(headers: RawHttpRequest['headers']): string {
  const auth = headers.authorization;
  const m = typeof auth === 'string' ? /Credential=[^/,]+\/[^/,]+\/[^/,]+\/([^/,]+)\//.exec(auth) : null;
  return m?.[1] !== undefined && IOT_SIGNING_NAMES.has(m[1]) ? m[1] : IOT_SIGNING_NAME;
}

export interface ControlPlaneHandlerOptions {
  controlPlane: JobsControlPlane;
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  logger?: Logger;
  /** Default the system's. Used for the SigV4 clock-skew check and the Date header. */
  clock?: Pick<Clock, 'now'>;
  /** Answer of DescribeEndpoint for iot:Data-ATS / iot:Data / iot:Jobs (the MQTT broker's host). */
  iotEndpointAddress?: string;
  /** Answer of DescribeEndpoint for iot:CredentialProvider. */
  credentialsEndpointAddress?: string;
  /** Certificates, policies, thing principals, role aliases (provisioning-routes.ts); absent: not served. */
  security?: SecurityRegistry;
  /** Session tokens of the stack's temporary credentials; absent: every X-Amz-Security-Token is refused. */
  checkSessionToken?: (sessionToken: string) => SessionTokenCheck;
}

export interface ControlPlaneServerOptions extends ControlPlaneHandlerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
}

export interface ControlPlaneServer {
  port: number;
  /** `http://<host>:<port>`, the value for IoTClient's `endpoint`. */
  endpoint: string;
  close(): Promise<void>;
}

/** A request as received: raw (percent-encoded) URL, lower-case header names, the whole body. */
export interface RawHttpRequest {
  method: string;
  /** Path and query exactly as on the request line, e.g. `/jobs/a%20b?force=true`. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
}

export interface RawHttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type ControlPlaneHandler = (req: RawHttpRequest) => Promise<RawHttpResponse>;

/**
 * restJson1 errors: the SDK takes the exception name from `x-amzn-ErrorType` (then the body's `code` /
 * `__type`) and the text from the body's `message`, and raises the modelled exception class of that name.
 */
function errorResponse(status: number, type: string, message: string, requestId: string): RawHttpResponse {
  return {
    status,
    headers: {
      'content-type': 'application/json',
      'x-amzn-errortype': type,
      'x-amzn-requestid': requestId,
    },
    body: JSON.stringify({ message }),
  };
}

type Dispatch =
  | { kind: 'match'; operation: string; run(query: ApiRequest['query'], body: unknown): unknown }
  | { kind: 'badLabel'; label: string }
  | { kind: 'none' };

/** The socket-free request handler: signature check, routing, validation, the service call, mapping. */
export function createControlPlaneHandler(opts: ControlPlaneHandlerOptions): ControlPlaneHandler {
  const logger = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const now = () => clock.now();
  const ctx: RouteContext = {
    controlPlane: opts.controlPlane,
    now,
    ...(opts.iotEndpointAddress !== undefined && { iotEndpointAddress: opts.iotEndpointAddress }),
    ...(opts.credentialsEndpointAddress !== undefined && {
      credentialsEndpointAddress: opts.credentialsEndpointAddress,
    }),
  };

  /** The operation for a request: provisioning routes (when a registry is given), then the Jobs routes. */
  const dispatch = (method: string, path: string, headers: RawHttpRequest['headers']): Dispatch => {
    const registry = opts.security;
    if (registry) {
      const p = provisioningRouter.match(method, path);
      if (p.kind === 'badLabel') return p;
      if (p.kind === 'match') {
        const provisioningCtx: ProvisioningContext = { registry };
        return {
          kind: 'match',
          operation: p.route.operation,
          run: (query, body) => p.route.handle(provisioningCtx, { labels: p.labels, query, body, headers }),
        };
      }
    }
    const m = matchRoute(method, path);
    if (m.kind !== 'match') return m;
    return {
      kind: 'match',
      operation: m.route.operation,
      run: (query, body) => m.route.handle(ctx, { labels: m.labels, query, body }),
    };
  };

  return async (req) => {
    const requestId = randomUUID();
    const method = req.method.toUpperCase();
    const q = req.url.indexOf('?');
    const path = q === -1 ? req.url : req.url.slice(0, q);
    const rawQuery = q === -1 ? '' : req.url.slice(q + 1);
    try {
      const auth = await verifySigV4(
        { method, path, rawQuery, headers: req.headers, body: req.body },
        {
          credentials: opts.credentials,
          region: opts.region,
          service: signingNameOf(req.headers),
          now: now(),
          ...(opts.checkSessionToken ? { checkSessionToken: opts.checkSessionToken } : {}),
        },
      );
      if (!auth.ok) {
        logger.warn({ method, path, reason: auth.message }, 'control plane: request refused (SigV4)');
        return errorResponse(403, auth.errorType ?? 'ForbiddenException', auth.message, requestId);
      }

      const match = dispatch(method, path, req.headers);
      if (match.kind === 'badLabel') {
        return errorResponse(
          400,
          'InvalidRequestException',
          `${match.label}: malformed percent-encoding`,
          requestId,
        );
      }
      if (match.kind === 'none') {
        return errorResponse(
          404,
          'UnknownOperationException',
          `${method} ${path}: no such operation on the local AWS IoT control plane`,
          requestId,
        );
      }

      let query: ApiRequest['query'];
      try {
        query = parseQuery(rawQuery);
      } catch {
        return errorResponse(400, 'InvalidRequestException', 'query: malformed percent-encoding', requestId);
      }
      let body: unknown = {};
      if (req.body.length > 0) {
        const text = Buffer.from(req.body).toString('utf8');
        try {
          body = JSON.parse(text);
        } catch (err) {
          return errorResponse(
            400,
            'InvalidRequestException',
            `request body: not valid JSON (${errorMessage(err)})`,
            requestId,
          );
        }
      }

      const output = await match.run(query, body);
      const { operation } = match;
      logger.debug({ operation, requestId }, 'control plane: ok');
      return {
        status: 200,
        headers: { 'content-type': 'application/json', 'x-amzn-requestid': requestId },
        body: JSON.stringify(output ?? {}),
      };
    } catch (err) {
      if (err instanceof ControlPlaneError) {
        logger.debug({ method, path, code: err.code, message: err.message }, 'control plane: refused');
        return errorResponse(err.httpStatus, err.code, err.message, requestId);
      }
      logger.error({ err, method, path, requestId }, 'control plane: internal failure');
      return errorResponse(
        500,
        'InternalFailureException',
        `internal failure (request ${requestId})`,
        requestId,
      );
    }
  };
}

type BodyResult = { kind: 'ok'; body: Buffer } | { kind: 'tooLarge' } | { kind: 'aborted' };

/** Reads the whole body, keeping at most `limit` bytes; an oversized body is drained, then reported. */
function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: BodyResult) => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_DRAIN_BYTES) {
      settle({ kind: 'tooLarge' });
      return;
    }
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > MAX_DRAIN_BYTES) settle({ kind: 'tooLarge' });
    });
    req.on('end', () =>
      settle(size > limit ? { kind: 'tooLarge' } : { kind: 'ok', body: Buffer.concat(chunks) }),
    );
    req.on('error', () => settle({ kind: 'aborted' }));
    req.on('close', () => settle({ kind: 'aborted' }));
  });
}

/** Adapts the handler to node's http server: body limit, Date header, no unhandled rejections. */
export function createControlPlaneListener(
  opts: ControlPlaneHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const handler = createControlPlaneHandler(opts);
  const logger = opts.logger ?? silentLogger;
  const clock = opts.clock ?? systemClock;
  const now = () => clock.now();

  const send = (res: ServerResponse, r: RawHttpResponse, close = false) => {
    if (res.headersSent || res.destroyed) return;
    res.statusCode = r.status;
    for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
    // The SDK corrects its clock from the Date header of error answers; keep it on the same clock as
    // the skew check.
    res.setHeader('date', new Date(now()).toUTCString());
    res.setHeader('content-length', Buffer.byteLength(r.body));
    if (close) res.setHeader('connection', 'close');
    res.end(r.body);
  };

  return (req, res) => {
    void (async () => {
      const read = await readBody(req, MAX_BODY_BYTES);
      if (read.kind === 'aborted') return;
      if (read.kind === 'tooLarge') {
        const r = errorResponse(
          413,
          'InvalidRequestException',
          `request body: larger than ${MAX_BODY_BYTES} bytes`,
          randomUUID(),
        );
        send(res, r, true);
        if (!req.complete) res.on('finish', () => req.destroy());
        return;
      }
      const r = await handler({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: read.body,
      });
      send(res, r);
    })().catch((err: unknown) => {
      logger.error({ err }, 'control plane: listener failure');
      if (!res.headersSent) {
        send(res, errorResponse(500, 'InternalFailureException', 'internal failure', randomUUID()));
      } else res.destroy();
    });
  };
}

/** Starts the control-plane HTTP server. */
export async function startControlPlane(opts: ControlPlaneServerOptions): Promise<ControlPlaneServer> {
  const logger = opts.logger ?? silentLogger;
  const server = createServer(createControlPlaneListener(opts));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'control plane: server error'));
  const { port } = server.address() as AddressInfo;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const endpoint = `http://${host}:${port}`;
  logger.info({ endpoint }, 'control plane listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    endpoint,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
