import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { type Clock, systemClock } from '../../shared/clock.ts';
import { localS3ClientConfig } from '../../shared/s3-client-config.ts';
import type { AgentConfig } from '../config/agent-config.ts';
import type { ResolvedSource } from '../document/job-document.ts';
import { iotCredentialsProvider } from './credentials.ts';
import { pathStyleObjectUrl, presignGet } from './presign.ts';
import {
  type ClockSkew,
  type DownloadSource,
  HttpSource,
  type S3Presigner,
  S3Source,
  sdkPresigner,
} from './sources.ts';

interface SigningCredentialsLike {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

type CredentialSource = (() => Promise<SigningCredentialsLike>) | SigningCredentialsLike;

/**
 * Builds the DownloadSource of a resolved location, with one presigner per region (cached for the
 * agent's life) and the IoT credentials provider shared by all of them.
 */
export class SourceFactory {
  private readonly signers = new Map<string, S3Presigner>();
  private readonly clients: S3Client[] = [];
  private iotCredentials: (() => Promise<SigningCredentialsLike>) | undefined;
  /** The device clock's distance from S3's, learnt from a refused request, for every later signature. */
  private readonly skew: ClockSkew = { ms: 0 };

  constructor(
    private readonly cfg: AgentConfig,
    /** The device's own PEMs, for the credentials provider's mutual TLS. */
    private readonly pems: { ca?: string; cert: string; key: string },
    /** The agent's clock: credentials lifetimes and the signing time of presigned URLs. */
    private readonly clock: Pick<Clock, 'now'> = systemClock,
  ) {}

  open(src: ResolvedSource): DownloadSource {
    // `--local` against `ota dev --s3-tls`: the stack's CA signs its S3 certificate, so it is trusted for
    // downloads too (besides Node's roots). Against AWS no CA is added: the same TLS path, default roots.
    const tls = this.cfg.local && this.pems.ca ? { ca: this.pems.ca } : {};
    if (src.kind === 's3')
      return new S3Source(this.presignerFor(src), src.bucket, src.key, tls, {
        clock: this.clock,
        skew: this.skew,
      });
    return new HttpSource(src.url, tls);
  }

  close(): void {
    for (const s3 of this.clients) s3.destroy();
    this.clients.length = 0;
    this.signers.clear();
  }

  private credentials(): CredentialSource | undefined {
    const c = this.cfg;
    if (c.roleAlias && c.credentialsEndpoint) {
      this.iotCredentials ??= iotCredentialsProvider({
        endpoint: c.credentialsEndpoint,
        roleAlias: c.roleAlias,
        thingName: c.thingName,
        ...this.pems,
        clock: this.clock,
      });
      return this.iotCredentials;
    }
    return c.s3Credentials;
  }

  /**
   * How GetObject URLs are presigned. With a custom S3 endpoint (the local stack, path-style like
   * localS3ClientConfig) and explicit credentials (static keys or the IoT credentials provider), the agent
   * signs itself (src/device/source/presign.ts, checked against the SDK's presigner by a unit test) and never loads
   * @aws-sdk/client-s3 (~14 MiB RSS, ~0.1 s CPU at start-up). Against AWS, or with the default credential
   * chain, the SDK's client does it (endpoint rules: virtual-hosted vs path-style, partitions, FIPS; the
   * chain's providers), loaded on the first S3 job only.
   */
  private presignerFor(src: ResolvedSource): S3Presigner {
    const c = this.cfg;
    const region = (c.s3Endpoint ? c.region : undefined) ?? src.region;
    let signer = this.signers.get(region);
    if (signer) return signer;
    const credentials = this.credentials();
    const endpoint = c.s3Endpoint;
    if (endpoint && credentials) {
      signer = {
        presignGetObject: async (bucket, key, expiresIn, signingDate) =>
          presignGet({
            url: pathStyleObjectUrl(endpoint, bucket, key),
            region,
            credentials: typeof credentials === 'function' ? await credentials() : credentials,
            expiresIn,
            date: signingDate,
            query: { 'x-id': 'GetObject' },
          }),
      };
    } else {
      signer = this.sdkSigner(region, endpoint, credentials);
    }
    this.signers.set(region, signer);
    return signer;
  }

  private sdkSigner(
    region: string,
    endpoint: string | undefined,
    credentials: CredentialSource | undefined,
  ): S3Presigner {
    let inner: Promise<S3Presigner> | undefined;
    const load = async (): Promise<S3Presigner> => {
      const { S3Client } = await import('@aws-sdk/client-s3');
      let config: S3ClientConfig;
      if (endpoint) {
        // Default chain against a custom endpoint.
        config = localS3ClientConfig(endpoint, { accessKeyId: 'unused', secretAccessKey: 'unused' }, region);
        delete config.credentials;
      } else {
        config = { region, ...(credentials ? { credentials } : {}) };
      }
      const client = new S3Client(config);
      this.clients.push(client);
      return sdkPresigner(client);
    };
    return {
      presignGetObject: async (bucket, key, expiresIn, signingDate) => {
        inner ??= load();
        return (await inner).presignGetObject(bucket, key, expiresIn, signingDate);
      },
    };
  }
}
