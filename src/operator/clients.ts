import { readFileSync } from 'node:fs';
import { IoTClient } from '@aws-sdk/client-iot';
import { S3Client } from '@aws-sdk/client-s3';
import type { Endpoints } from '../shared/endpoints.ts';
import { localS3ClientConfig } from '../shared/s3-client-config.ts';

/**
 * Where operator tools send their AWS calls: the local stack (endpoints.json) or AWS itself, where the
 * SDK's default credential chain and region settings (AWS_PROFILE, AWS_REGION, ~/.aws/config) apply.
 */
export type Target =
  | { kind: 'local'; endpoints: Endpoints }
  | { kind: 'aws'; region?: string; profile?: string };

export function iotClientFor(target: Target): IoTClient {
  if (target.kind === 'local') {
    const { endpoints } = target;
    return new IoTClient({
      region: endpoints.region,
      endpoint: endpoints.iot.endpoint,
      credentials: { accessKeyId: endpoints.iot.accessKeyId, secretAccessKey: endpoints.iot.secretAccessKey },
      maxAttempts: 3,
    });
  }
  // `profile` selects a shared-config profile without touching process.env (SDK v3 client option).
  return new IoTClient({ region: target.region, profile: target.profile });
}

export function s3ClientFor(target: Target): S3Client {
  if (target.kind === 'local') {
    const { endpoints } = target;
    // s3rver: path-style, and no aws-chunked uploads (checksums only when required), see docs/object-store.md;
    // over https (`ota dev --s3-tls`) the local CA is trusted.
    const https = endpoints.s3.endpoint.startsWith('https:');
    return new S3Client(
      localS3ClientConfig(endpoints.s3.endpoint, endpoints.s3, endpoints.region, {
        ...(https ? { ca: readFileSync(endpoints.rootCA, 'utf8') } : {}),
      }),
    );
  }
  return new S3Client({ region: target.region, profile: target.profile });
}
