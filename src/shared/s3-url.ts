/**
 * Firmware locations as they appear in job documents, mapped to S3 {bucket, key, region?}.
 *
 * Accepted forms (S3 User Guide, "Methods for accessing a bucket" / "Virtual hosting of buckets"):
 *   s3://<bucket>/<key>
 *   https://s3.amazonaws.com/<bucket>/<key>                 (path-style, global endpoint: no region)
 *   https://s3.<region>.amazonaws.com/<bucket>/<key>        (also s3.dualstack.<region>)
 *   https://s3-<region>.amazonaws.com/<bucket>/<key>        (legacy dash form; s3-external-1 = us-east-1)
 *   https://<bucket>.s3.amazonaws.com/<key>                 (virtual-hosted)
 *   https://<bucket>.s3.<region>.amazonaws.com/<key>
 *   https://<bucket>.s3-<region>.amazonaws.com/<key>
 * http:// is accepted like https://, and `amazonaws.com.cn` like `amazonaws.com`. Any query string
 * (a presigned URL's X-Amz-* parameters) is ignored for the location.
 *
 * Keys are percent-decoded segment by segment. A literal `+` in an https path decodes to a space, as S3
 * itself does (the S3 console's "Object URL" writes spaces as `+`; SDKs always send `%2B` for a plus);
 * `s3://` URIs are not URL-encoded (AWS CLI convention), so their keys are taken literally.
 */
export interface S3Location {
  bucket: string;
  key: string;
  /** Only when the host names one; `s3.amazonaws.com` and `<bucket>.s3.amazonaws.com` do not. */
  region?: string;
}

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;
const AWS_DOMAIN = /\.amazonaws\.com(?:\.cn)?$/;

function decodeSegment(s: string, plusIsSpace: boolean): string | null {
  try {
    return decodeURIComponent(plusIsSpace ? s.replace(/\+/g, ' ') : s);
  } catch {
    return null;
  }
}

function decodeKey(rawPath: string, plusIsSpace: boolean): string | null {
  const parts = rawPath.split('/').map((p) => decodeSegment(p, plusIsSpace));
  if (parts.some((p) => p === null)) return null;
  return parts.join('/');
}

/** Region named by an S3 service host label sequence (`s3`, `s3.<region>`, `s3-<region>`, ...). */
function serviceRegion(labels: string[]): { region?: string } | null {
  // labels: what precedes ".amazonaws.com", e.g. ["s3"], ["s3", "us-west-2"], ["s3-us-west-2"],
  // ["s3", "dualstack", "us-west-2"].
  const [first, ...rest] = labels;
  if (first === 's3') {
    if (rest.length === 0) return {};
    if (rest.length === 1 && REGION.test(rest[0] ?? '')) return { region: rest[0] };
    if (rest.length === 2 && rest[0] === 'dualstack' && REGION.test(rest[1] ?? ''))
      return { region: rest[1] };
    return null;
  }
  if (first?.startsWith('s3-') && rest.length === 0) {
    const region = first.slice(3);
    if (region === 'external-1') return { region: 'us-east-1' };
    if (REGION.test(region)) return { region };
  }
  return null;
}

/** Parses a firmware location; null when it is not an S3 object URL. */
export function parseS3Url(input: string): S3Location | null {
  const text = input.trim();
  const s3 = /^s3:\/\/([^/]+)\/(.+)$/is.exec(text);
  if (s3) {
    // s3://bucket/key as the AWS CLI writes it: not URL-encoded, so the key is taken literally.
    const [, bucket = '', key = ''] = s3;
    return { bucket, key };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  const host = url.hostname.toLowerCase();
  if (!AWS_DOMAIN.test(host)) return null;
  const labels = host.replace(AWS_DOMAIN, '').split('.');
  const rawPath = url.pathname.replace(/^\//, '');

  // Path-style: the whole host is the S3 service endpoint.
  const pathStyle = serviceRegion(labels);
  if (pathStyle) {
    const slash = rawPath.indexOf('/');
    if (slash <= 0) return null;
    const bucket = decodeSegment(rawPath.slice(0, slash), false);
    const key = decodeKey(rawPath.slice(slash + 1), true);
    if (!bucket || !key) return null;
    return { bucket, key, ...pathStyle };
  }

  // Virtual-hosted: <bucket>.<service endpoint>; bucket names may contain dots, so try each split point.
  for (let i = 1; i < labels.length; i++) {
    const service = serviceRegion(labels.slice(i));
    if (!service) continue;
    const bucket = labels.slice(0, i).join('.');
    const key = decodeKey(rawPath, true);
    if (!key) return null;
    return { bucket, key, ...service };
  }
  return null;
}

/** True when the URL carries a query-string signature: SigV4 `X-Amz-Signature` (or SigV2 `Signature`). */
export function isPresignedUrl(input: string): boolean {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    return false;
  }
  for (const name of url.searchParams.keys()) {
    if (name.toLowerCase() === 'x-amz-signature') return true;
  }
  return url.searchParams.has('Signature') && url.searchParams.has('AWSAccessKeyId');
}

/** Percent-encodes a key for a URL path, segment by segment (RFC 3986 unreserved characters stay). */
export function encodeS3Key(key: string): string {
  return key
    .split('/')
    .map((seg) =>
      encodeURIComponent(seg).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
}

/**
 * The job-document form of a firmware location, exactly as the original document writes it:
 * `https://s3.amazonaws.com/<bucket>/<key>` (the device agent maps it onto its configured S3 endpoint).
 */
export function formatS3HttpsUrl(bucket: string, key: string): string {
  return `https://s3.amazonaws.com/${bucket}/${encodeS3Key(key)}`;
}
