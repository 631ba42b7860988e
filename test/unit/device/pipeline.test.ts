import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AgentConfig } from '../../../src/device/config/agent-config.ts';
import { JobRejectedError } from '../../../src/device/errors.ts';
import { StateStore } from '../../../src/device/install/state.ts';
import {
  checkVersion,
  type JobContext,
  newJobContext,
  printSections,
  resolveSourceStep,
  runSteps,
  type StepEnv,
  type StepName,
  validateDocument,
} from '../../../src/device/pipeline.ts';
import { pythonBytesRepr, receivedSection } from '../../../src/device/progress/sections.ts';
import { ManualClock } from '../../../src/shared/clock.ts';
import { silentLogger } from '../../../src/shared/log.ts';

const DOC = {
  firmware: {
    version: '41811020',
    size: 87232512,
    region: 'us-west-2',
    url: 'https://s3.amazonaws.com/dev-korea-job/firmware/CV150-C3_0.6.6/cv150_ubifs.img',
  },
};

function env(out: string[]): StepEnv {
  return {
    config: { downloadDir: '/Users/dajeongjeon/Desktop' } as AgentConfig,
    logger: silentLogger,
    write: (t) => out.push(t),
    signal: new AbortController().signal,
    stopSignal: new AbortController().signal,
    jobs: {
      startNext: async () => undefined,
      describe: async () => undefined,
      getPending: async () => ({ inProgressJobs: [], queuedJobs: [] }),
      update: async () => undefined,
    },
    openSource: () => {
      throw new Error('not used');
    },
    progress: undefined as unknown as StepEnv['progress'],
    state: new StateStore('/nonexistent'),
    timers: new ManualClock(),
    invalidJobIds: new Set(),
    hooks: {},
    trustedKeys: [],
  };
}

const ctx = (jobDocument: unknown, currentVersion = '41811019'): JobContext => ({
  ...newJobContext(currentVersion, 0),
  execution: { jobId: 'rasp-ota-test', status: 'IN_PROGRESS', jobDocument },
  jobId: 'rasp-ota-test',
});

describe('OTA steps, each alone', () => {
  test("print-sections writes the original's three sections", async () => {
    const out: string[] = [];
    const c = ctx(DOC);
    await validateDocument.run(c, env(out));
    await printSections.run(c, env(out));
    assert.equal(
      out.join(''),
      [
        '===== [Job Info] =====',
        'Job name: rasp-ota-test',
        'Status: IN_PROGRESS',
        'Size: 87232512',
        'Document:',
        "{'firmware': {'version': '41811020', 'size': 87232512, 'region': 'us-west-2', 'url': 'https://s3.amazonaws.com/dev-korea-job/firmware/CV150-C3_0.6.6/cv150_ubifs.img'}}",
        '',
        '===== [Required Info for OTA] =====',
        'FROM----->>',
        'Bucket: dev-korea-job',
        'Key: firmware/CV150-C3_0.6.6/cv150_ubifs.img',
        'File: cv150_ubifs.img',
        '',
        'TO----->>',
        'Local Directory: /Users/dajeongjeon/Desktop/',
        '=====',
        '',
        '===== [Version Information] =====',
        'New Version: 41811020',
        'Current Version: 41811019',
        '=====',
        '',
        '',
      ].join('\n'),
    );
  });
  test('validate-document rejects with the field; check-version rejects naming both versions', async () => {
    await assert.rejects(
      validateDocument.run(ctx({ firmware: { ...DOC.firmware, size: 0 } }), env([])),
      (e: unknown) => e instanceof JobRejectedError && /^firmware\.size: /.test(e.reason),
    );
    const c = ctx(DOC, '41811020');
    await validateDocument.run(c, env([]));
    await assert.rejects(
      checkVersion.run(c, env([])),
      (e: unknown) =>
        e instanceof JobRejectedError &&
        /41811020 is not newer than the current version 41811020/.test(e.reason),
    );
    const c2 = ctx(DOC, '9');
    await validateDocument.run(c2, env([]));
    await checkVersion.run(c2, env([]));
  });
  test('resolve-source rejects a bad URL; runSteps reports step names in order and stops at the first error', async () => {
    const c = ctx({ firmware: { ...DOC.firmware, url: 'ftp://x/y.img' } });
    const seen: [StepName, boolean][] = [];
    await assert.rejects(
      runSteps([validateDocument, checkVersion, resolveSourceStep, printSections], c, env([]), {
        onStepEnd: (s, _ms, err) => seen.push([s, err === undefined]),
      }),
      (e: unknown) => e instanceof JobRejectedError && /^firmware\.url: scheme ftp/.test(e.reason),
    );
    assert.deepEqual(seen, [
      ['validate-document', true],
      ['check-version', true],
      ['resolve-source', false],
    ]);
  });
  test("subscriber output matches the original's (payload as Python bytes)", () => {
    const payload = Buffer.from('{"camera_id": "RaspberryPi_2", "Progress": "84.37 %"}');
    assert.equal(
      receivedSection('CarVi/test/firmware/RaspberryPi_2', payload),
      'Received a new message:\nb\'{"camera_id": "RaspberryPi_2", "Progress": "84.37 %"}\'\nfrom topic:\nCarVi/test/firmware/RaspberryPi_2\n=====\n',
    );
    assert.equal(pythonBytesRepr(Buffer.from("it's")), 'b"it\'s"');
    assert.equal(pythonBytesRepr(Buffer.from([0xe9, 0x0a])), "b'\\xe9\\n'");
  });
});
