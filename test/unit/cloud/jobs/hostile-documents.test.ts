/**
 * Documents built to break the service. Deep nesting is refused at CreateJob with a
 * clear message, and no document — deep, or one whose placeholders never presign — can wedge a thing's
 * queue: the execution fails with a reason and the thing's next job starts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { jsonDepth, MAX_DOCUMENT_DEPTH, renderDocument } from '../../../../src/cloud/jobs/document.ts';
import { MAX_RENDER_FAILURES } from '../../../../src/cloud/jobs/service.ts';
import type { JobRecord } from '../../../../src/cloud/jobs/types.ts';
import { cpCode, DOC, none, only, placeholder, T, thingArn, withHarness, withThing } from './harness.ts';

const deepObjects = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const deepArrays = (n: number) => `{"a":${'['.repeat(n)}${']'.repeat(n)}}`;

describe('hostile job documents', () => {
  test('CreateJob refuses deep nesting (5,000 objects, 16,000 arrays) by name, within 32 KB', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      const cp = h.svc.controlPlane;
      for (const [doc, depth] of [
        [deepObjects(5000), 5000],
        [deepArrays(16000), 16001],
      ] as const) {
        assert.ok(Buffer.byteLength(doc) <= 32 * 1024);
        assert.throws(
          () => cp.createJob({ jobId: `deep-${depth}`, targets: [thingArn('car-1')], document: doc }),
          cpCode(
            'InvalidRequestException',
            new RegExp(
              `^document nests objects and arrays ${depth} levels deep; at most ${MAX_DOCUMENT_DEPTH}`,
            ),
          ),
        );
      }
      // The limit itself is accepted, one more is not.
      cp.createJob({
        jobId: 'at-limit',
        targets: [thingArn('car-1')],
        document: deepObjects(MAX_DOCUMENT_DEPTH),
      });
      assert.throws(
        () =>
          cp.createJob({
            jobId: 'over',
            targets: [thingArn('car-1')],
            document: deepObjects(MAX_DOCUMENT_DEPTH + 1),
          }),
        cpCode('InvalidRequestException', /levels deep/),
      );
      // Brackets inside strings do not count.
      assert.equal(jsonDepth(JSON.stringify({ s: '[[[[{{{{"\\' })), 1);
      const r = only(await h.request('car-1', 'start-next', {}), T('car-1', 'start-next/accepted'));
      assert.equal(jsonDepth(r.raw), MAX_DOCUMENT_DEPTH + 2); // reply → execution → document
    });
  });

  test('a deep document already in the database is delivered as is, without a RangeError', async () => {
    await withHarness(async (h) => {
      await withThing(h);
      const cp = h.svc.controlPlane;
      cp.createJob({ jobId: 'old', targets: [thingArn('car-1')], document: DOC });
      cp.createJob({ jobId: 'later', targets: [thingArn('car-1')], document: DOC });
      // As a database written before the limit existed would hold it.
      const deep = deepObjects(5000);
      const db = new Database(h.dbPath);
      db.prepare('UPDATE jobs SET document = ? WHERE job_id = ?').run(deep, 'old');
      db.close();
      const started = only(await h.request('car-1', 'start-next', {}), T('car-1', 'start-next/accepted'));
      assert.equal(started.payload.execution.jobId, 'old');
      assert.equal(jsonDepth(started.raw), 5002, 'the reply holds the whole document');
      only(await h.request('car-1', 'old/get', {}), T('car-1', 'old/get/accepted'));
      only(
        await h.request('car-1', 'old/update', { status: 'SUCCEEDED' }),
        T('car-1', 'old/update/accepted'),
      );
      const next = only(await h.request('car-1', 'start-next', {}), T('car-1', 'start-next/accepted'));
      assert.equal(next.payload.execution.jobId, 'later');
    });
  });

  test('a document that never presigns fails its execution; the thing’s next job starts', async () => {
    const presign = async (url: string) => {
      if (url.includes('broken')) throw new Error(`not an S3 URL: ${url}`);
      return `${url}?signed`;
    };
    await withHarness({ presign }, async (h) => {
      await withThing(h);
      const cp = h.svc.controlPlane;
      cp.createJob({
        jobId: 'broken',
        targets: [thingArn('car-1')],
        document: JSON.stringify({ url: placeholder('broken://x') }),
      });
      cp.createJob({
        jobId: 'fine',
        targets: [thingArn('car-1')],
        document: JSON.stringify({ url: placeholder('https://s3.us-west-2.amazonaws.com/b/k') }),
      });
      await h.svc.idle(); // the notify-next for 'broken' failed to render once already
      let last: ReturnType<typeof only> | undefined;
      for (let i = 1; i < MAX_RENDER_FAILURES; i++) {
        last = only(
          await h.request('car-1', 'start-next', { clientToken: `t${i}` }),
          T('car-1', 'start-next/rejected'),
        );
        assert.equal(last.payload.code, 'InternalError');
      }
      const e = cp.describeJobExecution('broken', 'car-1');
      assert.equal(e.status, 'FAILED');
      assert.match(
        e.statusDetails.reason ?? '',
        /^job document could not be delivered: not an S3 URL: broken/,
      );
      const next = only(await h.request('car-1', 'start-next', {}), T('car-1', 'start-next/accepted'));
      assert.equal(next.payload.execution.jobId, 'fine');
      assert.equal(next.payload.execution.jobDocument.url, 'https://s3.us-west-2.amazonaws.com/b/k?signed');
      assert.equal(cp.describeJob('broken').job.status, 'COMPLETED');
    });
  });

  test('a transient presign failure does not fail the execution', async () => {
    let failures = 1;
    const presign = async (url: string) => {
      if (failures-- > 0) throw new Error('credentials not ready');
      return `${url}?signed`;
    };
    await withHarness({ presign }, async (h) => {
      await withThing(h);
      h.svc.controlPlane.createJob({
        jobId: 'j1',
        targets: [thingArn('car-1')],
        document: JSON.stringify({ url: placeholder('https://s3.us-west-2.amazonaws.com/b/k') }),
      });
      await h.svc.idle(); // notify-next: the one failure
      const r = await h.request('car-1', 'start-next', {});
      none(r, T('car-1', 'start-next/rejected'));
      assert.equal(h.svc.controlPlane.describeJobExecution('j1', 'car-1').status, 'IN_PROGRESS');
    });
  });

  test('rendering: only string values, escaped placeholders too, the rest byte for byte', async () => {
    const url = 'https://s3.us-west-2.amazonaws.com/b/k';
    const text = `{ "${placeholder(url)}" : "x",\n  "u": "\\u0024{aws:iot:s3-presigned-url:${url}}",  "n": [1, 2.50] }`;
    const job = { document: text, presignedUrlConfig: { expiresInSec: 60 } } as JobRecord;
    const calls: [string, number][] = [];
    const out = await renderDocument(job, async (u, exp) => {
      calls.push([u, exp]);
      return `${u}?sig`;
    });
    assert.deepEqual(calls, [[url, 60]]);
    assert.equal(out, `{ "${placeholder(url)}" : "x",\n  "u": "${url}?sig",  "n": [1, 2.50] }`);
    assert.equal(
      await renderDocument({ document: DOC } as JobRecord, async () => assert.fail('no presign')),
      DOC,
    );
  });
});
