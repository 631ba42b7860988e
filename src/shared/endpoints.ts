import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

/**
 * `<data-dir>/endpoints.json`: how every tool, test and the device agent find the local stack that
 * `ota dev` runs. Its key set is fixed: tools script against it.
 */
export const EndpointsSchema = z.object({
  region: z.string(),
  mqtt: z.object({ host: z.string(), port: z.number().int().positive() }),
  ws: z.object({ url: z.string() }),
  /** MQTT over WebSocket over TLS (SigV4-presigned URL; the server certificate chains to rootCA). */
  wss: z.object({ url: z.string() }).optional(),
  iot: z.object({ endpoint: z.string(), accessKeyId: z.string(), secretAccessKey: z.string() }),
  s3: z.object({
    endpoint: z.string(),
    accessKeyId: z.string(),
    secretAccessKey: z.string(),
    bucket: z.string(),
  }),
  rootCA: z.string(),
  things: z.record(z.string(), z.object({ cert: z.string(), key: z.string() })),
  operator: z.object({ cert: z.string(), key: z.string() }),
  /** The fleet dashboard, when `ota dev` serves one. */
  dashboard: z.object({ url: z.string() }).optional(),
});

export type Endpoints = z.infer<typeof EndpointsSchema>;

export const ENDPOINTS_FILE = 'endpoints.json';
export const DEFAULT_DATA_DIR = '.ota';

/** `--data-dir`, else `OTA_DATA_DIR`, else `.ota`. */
export function resolveDataDir(flag?: string): string {
  return resolve(flag ?? process.env.OTA_DATA_DIR ?? DEFAULT_DATA_DIR);
}

/**
 * The one line for a stale endpoints.json (an `ota dev` that has stopped): the operator commands and the
 * agent (`--local`) say the same thing. `where` is the address nothing listens on.
 */
export function stackNotRunningMessage(dataDir: string, where: string): string {
  return (
    `the local stack at ${dataDir} is not running (nothing listens on ${where}; its endpoints.json ` +
    `is left from an \`ota dev\` that has stopped): start it with \`ota dev --data-dir ${dataDir}\``
  );
}

export function readEndpoints(dataDir: string): Endpoints {
  const file = resolve(dataDir, ENDPOINTS_FILE);
  if (!existsSync(file)) {
    throw new ConfigError(
      `${file} not found: start the local stack first with \`ota dev --data-dir ${dataDir}\``,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON`, { cause: err });
  }
  const parsed = EndpointsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${file}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  return parsed.data;
}
