import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningObjectStore, startObjectStore } from '../../src/cloud/object-store/store.ts';

/**
 * The original device code used boto3 (`client.download_fileobj(BUCKET, KEY, data, Callback=...)`,
 * `client.head_object(...)['ContentLength']`). This runs boto3 from the system Python (Debian
 * python3-boto3) against the local store. Runs in the interop CI step.
 */
const PYTHON = '/usr/bin/python3';
const CREDS = { accessKeyId: 'AKIDBOTO3INTEROP', secretAccessKey: 'boto3-interop-secret' };
const BUCKET = 'dev-korea-job';

const SCRIPT = `
import hashlib, io, json, os, sys, urllib.request, urllib.error
import boto3
from botocore.config import Config

endpoint, bucket, region = os.environ['S3_ENDPOINT'], os.environ['S3_BUCKET'], os.environ['S3_REGION']
opts = dict(s3={'addressing_style': 'path'}, signature_version='s3v4')
try:
    cfg = Config(request_checksum_calculation='when_required', response_checksum_validation='when_required', **opts)
except TypeError:  # botocore < 1.36 has no flexible-checksum defaults to turn off
    cfg = Config(**opts)
session = boto3.Session(aws_access_key_id=os.environ['AK'], aws_secret_access_key=os.environ['SK'])
client = session.client('s3', endpoint_url=endpoint, region_name=region, config=cfg)
out = {}

body = bytes((i * 7) % 256 for i in range(1000))
client.put_object(Bucket=bucket, Key='firmware/CV150-C3_0.6.6/cv150_ubifs.img', Body=body)
r = client.get_object(Bucket=bucket, Key='firmware/CV150-C3_0.6.6/cv150_ubifs.img', Range='bytes=100-199')
out['range_status'] = r['ResponseMetadata']['HTTPStatusCode']
out['content_range'] = r['ContentRange']
out['range_ok'] = r['Body'].read() == body[100:200]
out['head_length'] = client.head_object(Bucket=bucket, Key='firmware/CV150-C3_0.6.6/cv150_ubifs.img')['ContentLength']
out['keys'] = [o['Key'] for o in client.list_objects_v2(Bucket=bucket, Prefix='firmware/')['Contents']]

# The original's download path: download_fileobj with a progress Callback (ranged GETs for big objects).
big = os.urandom(9 * 1024 * 1024 + 3)
client.upload_fileobj(io.BytesIO(big), bucket, 'big.img')
seen = [0]
def progress(n):
    seen[0] += n
sink = io.BytesIO()
client.download_fileobj(bucket, 'big.img', sink, Callback=progress)
out['big_ok'] = hashlib.sha256(sink.getvalue()).hexdigest() == hashlib.sha256(big).hexdigest()
out['big_progress'] = seen[0]
out['big_size'] = len(big)

url = client.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'firmware/CV150-C3_0.6.6/cv150_ubifs.img'}, ExpiresIn=60)
with urllib.request.urlopen(url) as resp:
    out['presigned_ok'] = resp.read() == body

client.delete_object(Bucket=bucket, Key='big.img')
out['after_delete'] = [o['Key'] for o in client.list_objects_v2(Bucket=bucket).get('Contents', [])]
print(json.dumps(out))
`;

function runPython(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', SCRIPT], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('boto3 against the local object store', () => {
  let dir: string;
  let store: RunningObjectStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ota-boto3-'));
    store = await startObjectStore({
      host: '127.0.0.1',
      port: 0,
      directory: dir,
      buckets: [BUCKET],
      region: 'us-west-2',
      credentials: CREDS,
    });
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('put, ranged get, head, list, multipart upload, download_fileobj, presigned GET, delete', async () => {
    const r = await runPython({
      S3_ENDPOINT: store.endpoint,
      S3_BUCKET: BUCKET,
      S3_REGION: 'us-west-2',
      AK: CREDS.accessKeyId,
      SK: CREDS.secretAccessKey,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    assert.equal(out.range_status, 206);
    assert.equal(out.content_range, 'bytes 100-199/1000');
    assert.equal(out.range_ok, true);
    assert.equal(out.head_length, 1000);
    assert.deepEqual(out.keys, ['firmware/CV150-C3_0.6.6/cv150_ubifs.img']);
    assert.equal(out.big_ok, true);
    assert.equal(out.big_progress, out.big_size);
    assert.equal(out.presigned_ok, true);
    assert.deepEqual(out.after_delete, ['firmware/CV150-C3_0.6.6/cv150_ubifs.img']);
  });
});
