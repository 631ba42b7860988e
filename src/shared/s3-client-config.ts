import { createRequire } from 'node:module';
import { rootCertificates } from 'node:tls';
import type { S3ClientConfig } from '@aws-sdk/client-s3';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * The S3ClientConfig every part of the project uses to talk to the local S3 store (`ota dev`, tests, the
 * device agent, operator tools). See docs/object-store.md.
 *
 * - `forcePathStyle`: the store answers `http://127.0.0.1:<port>/<bucket>/<key>`; a virtual-hosted URL
 *   (`<bucket>.127.0.0.1`) cannot resolve.
 * - `requestChecksumCalculation: 'WHEN_REQUIRED'`: since @aws-sdk/client-s3 3.729 the SDK by default sends
 *   PutObject bodies as `aws-chunked` with a trailing CRC32 ("S3 data integrity protections", AWS SDK
 *   2025-01). s3rver does not understand that framing; the store decodes it as a safety net, but plain
 *   bodies are simpler, cheaper and what older clients (boto3 < 1.36) send anyway.
 * - `responseChecksumValidation: 'WHEN_REQUIRED'`: do not ask for `x-amz-checksum-mode: ENABLED`; the
 *   store never returns checksum headers.
 * - `ca` (PEM): for an https endpoint (`ota dev --s3-tls`), the local CA is trusted in addition to the
 *   usual roots.
 */
const require = createRequire(import.meta.url);

export function localS3ClientConfig(
  endpoint: string,
  creds: S3Credentials,
  region: string,
  opts: { ca?: string } = {},
): S3ClientConfig {
  const tls =
    opts.ca && endpoint.startsWith('https:')
      ? {
          requestHandler: {
            // An Agent, not Agent options: with options the SDK's handler verifies streaming uploads
            // without `ca` (seen with @smithy/node-http-handler 4.x). node:https is loaded here, on this
            // path only: the device agent imports this module, and loading it costs ~20 ms at start-up.
            httpsAgent: new (require('node:https') as typeof import('node:https')).Agent({
              keepAlive: true,
              ca: [...rootCertificates, opts.ca],
            }),
          },
        }
      : {};
  return {
    ...tls,
    endpoint,
    region,
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken !== undefined ? { sessionToken: creds.sessionToken } : {}),
    },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}
