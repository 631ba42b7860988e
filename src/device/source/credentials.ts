import * as https from 'node:https';
import { isIP } from 'node:net';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { OtaError } from '../../shared/errors.ts';

export interface TemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

export interface IotCredentialsProviderOptions {
  /** `https://<prefix>.credentials.iot.<region>.amazonaws.com` (or the local stack's mTLS port). */
  endpoint: string;
  roleAlias: string;
  thingName: string;
  ca?: string;
  cert: string;
  key: string;
  /** Refresh this long before expiration (default 5 min; AWS SDKs use a similar window). */
  refreshBeforeMs?: number;
  timeoutMs?: number;
  /** Decides when the cached credentials are due for a refresh; default the system's. */
  clock?: Pick<Clock, 'now'>;
}

/**
 * AWS IoT credentials provider (docs/protocol.md, Credentials provider): exchanges the device certificate
 * for temporary AWS credentials of the role behind `roleAlias`, so no AWS keys live on the device or in
 * the job document.
 * `GET /role-aliases/<alias>/credentials` over mutual TLS with `x-amzn-iot-thingname`; ALPN `http/1.1`
 * (required when the provider shares port 443/8883 with MQTT). The result is cached and refreshed before it
 * expires; concurrent callers share one in-flight request. Returns an AWS SDK credential provider.
 */
export function iotCredentialsProvider(
  opts: IotCredentialsProviderOptions,
): () => Promise<TemporaryCredentials> {
  const refreshBefore = opts.refreshBeforeMs ?? 5 * 60_000;
  const clock = opts.clock ?? systemClock;
  let cached: TemporaryCredentials | undefined;
  let inflight: Promise<TemporaryCredentials> | undefined;
  return () => {
    if (cached && cached.expiration.getTime() - refreshBefore > clock.now()) return Promise.resolve(cached);
    inflight ??= fetchIotCredentials(opts)
      .then((c) => {
        cached = c;
        return c;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };
}

export function fetchIotCredentials(opts: IotCredentialsProviderOptions): Promise<TemporaryCredentials> {
  const base = new URL(/^https?:\/\//.test(opts.endpoint) ? opts.endpoint : `https://${opts.endpoint}`);
  const url = new URL(`/role-aliases/${encodeURIComponent(opts.roleAlias)}/credentials`, base);
  return new Promise((resolve, reject) => {
    // https.RequestOptions accepts every tls.connect option at run time; its type omits ALPNProtocols.
    const options: https.RequestOptions & { ALPNProtocols: string[] } = {
      method: 'GET',
      headers: { 'x-amzn-iot-thingname': opts.thingName, accept: 'application/json' },
      ...(opts.ca ? { ca: opts.ca } : {}),
      cert: opts.cert,
      key: opts.key,
      ALPNProtocols: ['http/1.1'],
      ...(isIP(base.hostname) ? {} : { servername: base.hostname }),
      timeout: opts.timeoutMs ?? 10_000,
      agent: false,
    };
    const req = https.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let len = 0;
      res.on('data', (c: Buffer) => {
        len += c.length;
        if (len > 64 * 1024) res.destroy(new Error('credentials response too large'));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(
            new OtaError(
              'OTA_CREDENTIALS',
              `credentials provider answered ${res.statusCode}: ${text.slice(0, 200)}`,
            ),
          );
          return;
        }
        try {
          const c = (JSON.parse(text) as { credentials?: Record<string, string> }).credentials;
          if (!c?.accessKeyId || !c.secretAccessKey || !c.sessionToken || !c.expiration)
            throw new Error('incomplete');
          resolve({
            accessKeyId: c.accessKeyId,
            secretAccessKey: c.secretAccessKey,
            sessionToken: c.sessionToken,
            expiration: new Date(c.expiration),
          });
        } catch (err) {
          reject(
            new OtaError('OTA_CREDENTIALS', 'credentials provider sent an unexpected reply', { cause: err }),
          );
        }
      });
    });
    req.on('timeout', () => req.destroy(new OtaError('OTA_CREDENTIALS', 'credentials provider timed out')));
    req.on('error', reject);
    req.end();
  });
}
