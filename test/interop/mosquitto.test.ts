import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createEphemeralCa } from '../../src/cloud/pki/pki.ts';
import { resolveAgentConfig, startAgent } from '../../src/device/index.ts';
import { ORIGINAL_PROGRESS_KEYS } from '../../src/device/progress/message.ts';
import { s3ClientFor } from '../../src/operator/clients.ts';
import { putFirmware } from '../../src/operator/firmware.ts';
import { writeDeterministicImage } from '../../src/operator/image.ts';
import { createJob } from '../../src/operator/jobs.ts';
import {
  describeExecution,
  type InteropWorld,
  isEpochSeconds,
  mosquittoTlsArgs,
  parseTopicLine,
  requireTool,
  run,
  spawnLines,
  startInteropWorld,
} from './helpers.ts';

/**
 * Mosquitto's own command-line clients (libmosquitto + OpenSSL, nothing from Node) against the embedded
 * stack's broker: mutual TLS with the certificates from endpoints.json, the server certificate's host
 * names, the per-thing ACL, and a job driven to SUCCEEDED with nothing but mosquitto_pub/mosquitto_sub
 * (no Node client involved). Runs in the interop CI step, which apt-installs mosquitto-clients.
 */

// `mosquitto_sub -d` prints the SUBACK's granted QoS per filter ("Subscribed (mid: 1): 0"); 128 (0x80) is
// the MQTT 3.1.1 failure return code (section 3.9.3).
const SUBSCRIBED_OK = /^Subscribed \(mid: \d+\): [01]$/;
const SUBSCRIBED_DENIED = /^Subscribed \(mid: \d+\): 128$/;

describe('mosquitto clients against the local AWS IoT stack', () => {
  let SUB: string;
  let PUB: string;
  let w: InteropWorld;

  before(async () => {
    SUB = requireTool('mosquitto_sub', 'mosquitto-clients');
    PUB = requireTool('mosquitto_pub', 'mosquitto-clients');
    w = await startInteropWorld('mosquitto');
  });
  after(async () => {
    await w?.close();
  });

  test("mosquitto_sub (operator certificate) receives the agent's progress messages in the original format", async () => {
    const thing = 'Cam_mosq_progress';
    await w.stack.ensureThing(thing);
    const ep = w.endpoints;
    const size = 1024 * 1024 + 123;
    const image = await writeDeterministicImage(join(w.dir, 'cv150_ubifs.img'), size);
    const s3 = s3ClientFor({ kind: 'local', endpoints: ep });
    const fw = await putFirmware({
      file: image.path,
      bucket: ep.s3.bucket,
      version: '41811020',
      region: ep.region,
      name: 'CV150-C3_0.6.6',
      s3,
    });
    s3.destroy();

    // -W bounds the subscriber's life even if the agent never finishes; it is stopped once the outcome is in.
    const sub = spawnLines(SUB, [
      ...mosquittoTlsArgs(ep, ep.operator),
      '-t',
      'CarVi/test/firmware/+',
      '-v',
      '-d',
      '-W',
      '60',
    ]);
    try {
      await sub.waitForLine(SUBSCRIBED_OK);
      await createJob(w.iot, {
        jobId: 'mosq-progress',
        things: [thing],
        document: JSON.stringify(fw.document),
      });
      const config = resolveAgentConfig({
        flags: {
          local: w.stack.dataDir,
          thingName: thing,
          currentVersion: '41811019',
          downloadDir: join(w.dir, 'download'),
          once: true,
          progressIntervalMs: 50,
        },
        env: {},
      });
      const summary = await startAgent({ config }).done;
      assert.equal(summary.jobs[0]?.status, 'SUCCEEDED', summary.jobs[0]?.reason);
      // The agent's last message on the progress topic carries the job outcome.
      await sub.waitForLine(/^CarVi\/test\/firmware\/\S+ \{.*"state": "SUCCEEDED"/);
      const res = await sub.stop();
      assert.equal(res.stderr, '', 'mosquitto_sub reported no error');

      const messages = sub.lines.map(parseTopicLine).filter((m) => m !== null);
      assert.ok(messages.length >= 2, `got ${messages.length} progress messages:\n${sub.lines.join('\n')}`);
      for (const m of messages) {
        assert.equal(m.topic, `CarVi/test/firmware/${thing}`);
        assert.deepEqual(Object.keys(m.payload).slice(0, 8), [...ORIGINAL_PROGRESS_KEYS]);
        assert.equal(m.payload.camera_id, thing);
        assert.equal(m.payload['Firmware version'], 'CV150-C3_0.6.6');
        assert.equal(m.payload['Firmware filename'], 'cv150_ubifs.img');
        assert.equal(m.payload['Total size'], size);
      }
      const progress = messages.map((m) => m.payload.Progress);
      assert.ok(progress.includes('100.0 %'), `Progress values: ${progress.join(', ')}`);
      // The original's byte layout (Python json.dumps separators) reaches a non-Node client unchanged.
      const raw = sub.lines.find((l) => l.includes('"Progress": "100.0 %"')) ?? '';
      assert.match(
        raw,
        new RegExp(`^CarVi/test/firmware/${thing} \\{"camera_id": "${thing}", "OTA_start_time": "`),
      );
      assert.equal((await describeExecution(w.iot, thing, 'mosq-progress'))?.status, 'SUCCEEDED');
    } finally {
      await sub.stop();
    }
  });

  test('hostname verification: -h localhost and -h 127.0.0.1 both match the server certificate', async () => {
    const thing = 'Cam_mosq_host';
    await w.stack.ensureThing(thing);
    const ep = w.endpoints;
    const identity = ep.things[thing];
    assert.ok(identity);
    for (const host of ['localhost', '127.0.0.1']) {
      // -W 1 with no traffic: exit code 27 is mosquitto_sub's "timed out" (MOSQ_ERR_TIMEOUT) after a
      // successful CONNACK and SUBACK, i.e. the TLS handshake (with host name check) went through.
      const r = await run(SUB, [
        ...mosquittoTlsArgs(ep, identity, { host, clientId: `${thing}-${host}` }),
        '-t',
        `CarVi/test/firmware/${thing}`,
        '-d',
        '-W',
        '1',
      ]);
      assert.match(r.stdout, /received CONNACK \(0\)/, `${host}: ${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /^Subscribed \(mid: 1\): 0$/m, host);
      assert.equal(r.code, 27, `${host}: ${r.stderr}`);
    }
  });

  test('a client certificate from another CA is refused; a CA that did not sign the server is refused', async () => {
    const ep = w.endpoints;
    await w.stack.ensureThing('Cam_mosq_rogue');
    const rogue = await createEphemeralCa('Rogue CA');
    const pair = await rogue.issueClientCert('Cam_mosq_rogue');
    const certs = {
      cert: join(w.dir, 'rogue.cert.pem'),
      key: join(w.dir, 'rogue.key.pem'),
      ca: join(w.dir, 'rogue-ca.pem'),
    };
    await writeFile(certs.cert, pair.certPem);
    await writeFile(certs.key, pair.keyPem, { mode: 0o600 });
    await writeFile(certs.ca, rogue.caCertPem);

    // Same thing name, right server CA, but a certificate the local CA never issued: the broker ends the
    // handshake, so there is never a CONNACK.
    const r1 = await run(SUB, [
      ...mosquittoTlsArgs(ep, certs, { clientId: 'Cam_mosq_rogue' }),
      '-t',
      'CarVi/test/firmware/Cam_mosq_rogue',
      '-d',
      '-W',
      '5',
    ]);
    assert.notEqual(r1.code, 0);
    assert.notEqual(r1.code, 27, 'not a plain timeout after connecting');
    assert.doesNotMatch(r1.stdout, /received CONNACK/);
    assert.match(r1.stderr + r1.stdout, /Error|error/);

    // A genuine thing certificate, but the client trusts only the rogue CA: the client refuses the server.
    const genuine = ep.things.Cam_mosq_rogue;
    assert.ok(genuine);
    const r2 = await run(SUB, [
      ...mosquittoTlsArgs(ep, genuine, { cafile: certs.ca, clientId: 'Cam_mosq_rogue' }),
      '-t',
      'CarVi/test/firmware/Cam_mosq_rogue',
      '-d',
      '-W',
      '5',
    ]);
    assert.notEqual(r2.code, 0);
    assert.notEqual(r2.code, 27);
    assert.doesNotMatch(r2.stdout, /received CONNACK/);
    assert.match(r2.stderr, /certificate verify failed|OpenSSL Error|TLS/i, r2.stderr);
  });

  test("ACL: thing A's subscription to thing B's progress topic is refused (SUBACK 0x80) and gets nothing", async () => {
    await w.stack.ensureThing('Cam_mosq_A');
    await w.stack.ensureThing('Cam_mosq_B');
    const ep = w.endpoints;
    const a = ep.things.Cam_mosq_A;
    const b = ep.things.Cam_mosq_B;
    assert.ok(a && b);

    // B's own subscription, as a control: the same publish must reach it.
    const subB = spawnLines(SUB, [
      ...mosquittoTlsArgs(ep, b, { clientId: 'Cam_mosq_B-sub' }),
      '-t',
      'CarVi/test/firmware/Cam_mosq_B',
      '-v',
      '-d',
      '-W',
      '20',
    ]);
    const subA = spawnLines(SUB, [
      ...mosquittoTlsArgs(ep, a, { clientId: 'Cam_mosq_A-sub' }),
      '-t',
      'CarVi/test/firmware/Cam_mosq_B',
      '-v',
      '-d',
      '-W',
      '20',
    ]);
    try {
      await subB.waitForLine(SUBSCRIBED_OK);
      await subA.waitForLine(SUBSCRIBED_DENIED);
      const pub = await run(PUB, [
        ...mosquittoTlsArgs(ep, b, { clientId: 'Cam_mosq_B-pub' }),
        '-t',
        'CarVi/test/firmware/Cam_mosq_B',
        '-q',
        '1',
        '-m',
        '{"camera_id": "Cam_mosq_B", "Progress": "42.0 %"}',
      ]);
      assert.equal(pub.code, 0, pub.stderr);
      await subB.waitForLine(/^CarVi\/test\/firmware\/Cam_mosq_B \{"camera_id": "Cam_mosq_B"/);
      // mosquitto_sub gives up once every filter was refused (2.0: "All subscription requests were denied.").
      const resA = await Promise.race([
        subA.exited,
        new Promise<null>((r) => setTimeout(() => r(null), 1000)),
      ]);
      const resultA = resA ?? (await subA.stop());
      assert.equal(
        subA.lines.filter((l) => l.startsWith('CarVi/')).length,
        0,
        `A received: ${subA.lines.join('\n')}`,
      );
      if (resA) assert.match(resultA.stderr, /denied/i);
    } finally {
      await subA.stop();
      await subB.stop();
    }
  });

  test('a job driven to SUCCEEDED with mosquitto_pub/mosquitto_sub only, over mTLS with the thing certificate', async () => {
    const thing = 'Cam_mosq_jobs';
    await w.stack.ensureThing(thing);
    const ep = w.endpoints;
    const identity = ep.things[thing];
    assert.ok(identity);
    const jobId = 'mosq-jobs-1';
    await createJob(w.iot, {
      jobId,
      things: [thing],
      document: JSON.stringify({ firmware: { version: '41811020', size: 1 } }),
    });

    const prefix = `$aws/things/${thing}/jobs`;
    // Two connections under one certificate need distinct client ids: a second CONNECT with the same
    // clientId disconnects the first (docs/protocol.md, Message broker; MQTT 3.1.1 section 3.1.4).
    const sub = spawnLines(SUB, [
      ...mosquittoTlsArgs(ep, identity, { clientId: `${thing}-sub` }),
      '-t',
      `${prefix}/#`,
      '-q',
      '1',
      '-v',
      '-d',
      '-W',
      '30',
    ]);
    const publish = async (topic: string, message: unknown) => {
      const r = await run(PUB, [
        ...mosquittoTlsArgs(ep, identity, { clientId: `${thing}-pub` }),
        '-t',
        topic,
        '-q',
        '1',
        '-m',
        JSON.stringify(message),
      ]);
      assert.equal(r.code, 0, `mosquitto_pub ${topic}: ${r.stderr}`);
    };
    const reply = async (topic: string, clientToken: string) => {
      const esc = topic.replace(/[$/]/g, (c) => `\\${c}`);
      const line = await sub.waitForLine(new RegExp(`^${esc} \\{.*"clientToken":"${clientToken}"`));
      const parsed = parseTopicLine(line);
      assert.ok(parsed, line);
      return parsed.payload;
    };
    try {
      await sub.waitForLine(SUBSCRIBED_OK);

      await publish(`${prefix}/start-next`, { clientToken: 'mosq-start' });
      const started = await reply(`${prefix}/start-next/accepted`, 'mosq-start');
      const execution = started.execution as Record<string, unknown>;
      assert.equal(execution.jobId, jobId);
      assert.equal(execution.thingName, thing);
      assert.equal(execution.status, 'IN_PROGRESS');
      assert.deepEqual(execution.jobDocument, { firmware: { version: '41811020', size: 1 } });
      assert.ok(isEpochSeconds(started.timestamp), String(started.timestamp));
      const version = execution.versionNumber as number;
      assert.equal(typeof version, 'number');

      await publish(`${prefix}/${jobId}/update`, {
        status: 'SUCCEEDED',
        statusDetails: { via: 'mosquitto_pub' },
        expectedVersion: version,
        includeJobExecutionState: true,
        clientToken: 'mosq-done',
      });
      const updated = await reply(`${prefix}/${jobId}/update/accepted`, 'mosq-done');
      const state = updated.executionState as Record<string, unknown>;
      assert.equal(state.status, 'SUCCEEDED');
      assert.equal(state.versionNumber, version + 1);

      const exec = await describeExecution(w.iot, thing, jobId);
      assert.equal(exec?.status, 'SUCCEEDED');
      assert.deepEqual(exec?.statusDetails?.detailsMap, { via: 'mosquitto_pub' });
      assert.equal(
        sub.lines.some((l) => l.startsWith(`${prefix}/${jobId}/update/rejected`)),
        false,
        sub.lines.join('\n'),
      );
    } finally {
      await sub.stop();
    }
  });
});
