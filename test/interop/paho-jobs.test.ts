import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createJob } from '../../src/operator/jobs.ts';
import {
  describeExecution,
  type InteropWorld,
  isEpochSeconds,
  requirePaho,
  run,
  SYSTEM_PYTHON,
  startInteropWorld,
} from './helpers.ts';

/**
 * The Jobs MQTT API driven by Eclipse paho-mqtt for Python (Debian python3-paho-mqtt, the system
 * interpreter) over MQTT 3.1.1 and mutual TLS with the thing certificate from endpoints.json: the way a
 * device written against AWS's documentation, with no code from this project, would do it.
 */

const SCRIPT = `
import json, os, queue, ssl, sys, time
import paho.mqtt.client as mqtt

thing, job_id = os.environ['THING'], os.environ['JOB_ID']
prefix = '$aws/things/%s/jobs' % thing
replies = queue.Queue()
subscribed = queue.Queue()

def on_connect(client, userdata, flags, rc, properties=None):
    if rc != 0:
        print('CONNACK %s' % rc, file=sys.stderr)
        sys.exit(2)
    topics = [prefix + t for t in ('/start-next/accepted', '/start-next/rejected')]
    topics += ['%s/%s/update/%s' % (prefix, job_id, r) for r in ('accepted', 'rejected')]
    client.subscribe([(t, 1) for t in topics])

def on_subscribe(client, userdata, mid, granted_qos, properties=None):
    subscribed.put(list(granted_qos))

def on_message(client, userdata, msg):
    replies.put((msg.topic, json.loads(msg.payload.decode('utf-8'))))

client_id = thing + '-paho'
try:  # paho-mqtt >= 2 asks which callback signatures to use
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id, protocol=mqtt.MQTTv311)
except AttributeError:  # paho-mqtt 1.x (Debian bookworm ships 1.6.1)
    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)
client.tls_set(ca_certs=os.environ['CA'], certfile=os.environ['CERT'], keyfile=os.environ['KEY'],
               tls_version=ssl.PROTOCOL_TLS_CLIENT)
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.connect(os.environ['HOST'], int(os.environ['PORT']), keepalive=60)
client.loop_start()
out = {'granted': subscribed.get(timeout=10)}

def request(name, topic, payload):
    info = client.publish(prefix + topic, json.dumps(payload), qos=1)
    info.wait_for_publish()
    deadline = time.time() + 10
    while True:
        t, body = replies.get(timeout=max(0.1, deadline - time.time()))
        if body.get('clientToken') == payload['clientToken']:
            out[name] = {'topic': t[len(prefix) + 1:], 'body': body}
            return body

start = request('start', '/start-next', {'clientToken': 'paho-start', 'statusDetails': {'step': 'start'}})
v = start['execution']['versionNumber']
request('progress', '/%s/update' % job_id, {
    'status': 'IN_PROGRESS', 'statusDetails': {'step': 'download', 'progress': '50.0 %'},
    'expectedVersion': v, 'includeJobExecutionState': True, 'clientToken': 'paho-progress'})
request('bad', '/%s/update' % job_id, {
    'status': 'IN_PROGRESS', 'statusDetails': {'not a valid key!': 'x'}, 'clientToken': 'paho-bad'})
request('done', '/%s/update' % job_id, {
    'status': 'SUCCEEDED', 'expectedVersion': str(v + 1), 'includeJobExecutionState': True,
    'clientToken': 'paho-done'})
client.loop_stop()
client.disconnect()
print(json.dumps(out))
`;

interface Reply {
  topic: string;
  body: Record<string, unknown> & { clientToken: string; timestamp: number };
}

describe('paho-mqtt (Python) drives a job over the Jobs MQTT API', () => {
  let w: InteropWorld;
  before(async () => {
    requirePaho();
    w = await startInteropWorld('paho');
  });
  after(async () => {
    await w?.close();
  });

  test('start-next → IN_PROGRESS with statusDetails → a rejected update → SUCCEEDED with expectedVersion', async () => {
    const thing = 'Cam_paho';
    await w.stack.ensureThing(thing);
    const ep = w.endpoints;
    const identity = ep.things[thing];
    assert.ok(identity);
    const jobId = 'paho-job-1';
    const document = { firmware: { version: '41811020', size: 7 } };
    await createJob(w.iot, { jobId, things: [thing], document: JSON.stringify(document) });

    const script = join(w.dir, 'paho_jobs.py');
    await writeFile(script, SCRIPT);
    const r = await run(SYSTEM_PYTHON, [script], {
      timeoutMs: 60_000,
      env: {
        THING: thing,
        JOB_ID: jobId,
        HOST: ep.mqtt.host,
        PORT: String(ep.mqtt.port),
        CA: ep.rootCA,
        CERT: identity.cert,
        KEY: identity.key,
      },
    });
    assert.equal(r.code, 0, `python exited ${r.code} ${r.signal ?? ''}\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
      granted: number[];
      start: Reply;
      progress: Reply;
      bad: Reply;
      done: Reply;
    };

    // Every filter granted (QoS 1; 128 would be a refusal, MQTT 3.1.1 section 3.9.3).
    assert.deepEqual(out.granted, [1, 1, 1, 1]);

    assert.equal(out.start.topic, 'start-next/accepted');
    assert.equal(out.start.body.clientToken, 'paho-start');
    const execution = out.start.body.execution as Record<string, unknown>;
    assert.equal(execution.jobId, jobId);
    assert.equal(execution.thingName, thing);
    assert.equal(execution.status, 'IN_PROGRESS');
    assert.deepEqual(execution.statusDetails, { step: 'start' });
    assert.deepEqual(execution.jobDocument, document);
    for (const k of ['queuedAt', 'startedAt', 'lastUpdatedAt'] as const) {
      assert.ok(isEpochSeconds(execution[k]), `${k}: ${String(execution[k])}`);
    }
    const v = execution.versionNumber as number;
    assert.ok(Number.isInteger(v) && v >= 1, String(v));

    assert.equal(out.progress.topic, `${jobId}/update/accepted`);
    assert.equal(out.progress.body.clientToken, 'paho-progress');
    assert.deepEqual(out.progress.body.executionState, {
      status: 'IN_PROGRESS',
      statusDetails: { step: 'download', progress: '50.0 %' },
      versionNumber: v + 1,
    });

    assert.equal(out.bad.topic, `${jobId}/update/rejected`);
    assert.equal(out.bad.body.clientToken, 'paho-bad');
    assert.equal(out.bad.body.code, 'InvalidRequest');
    assert.match(String(out.bad.body.message), /statusDetails/);

    // expectedVersion went as a numeric string (accepted on the wire: docs/protocol.md, Wire format); the
    // refused update did not bump the version. statusDetails omitted: the stored ones are kept.
    assert.equal(out.done.topic, `${jobId}/update/accepted`);
    assert.equal(out.done.body.clientToken, 'paho-done');
    assert.deepEqual(out.done.body.executionState, {
      status: 'SUCCEEDED',
      statusDetails: { step: 'download', progress: '50.0 %' },
      versionNumber: v + 2,
    });

    for (const reply of [out.start, out.progress, out.bad, out.done]) {
      assert.ok(isEpochSeconds(reply.body.timestamp), `${reply.topic}: ${reply.body.timestamp}`);
    }

    const exec = await describeExecution(w.iot, thing, jobId);
    assert.equal(exec?.status, 'SUCCEEDED');
    assert.equal(exec?.versionNumber, v + 2);
    assert.deepEqual(exec?.statusDetails?.detailsMap, { step: 'download', progress: '50.0 %' });
  });
});
