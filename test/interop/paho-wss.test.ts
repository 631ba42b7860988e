import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { presignWebSocketUrlSync } from '../../src/shared/ws-url.ts';
import { type InteropWorld, requirePaho, run, SYSTEM_PYTHON, startInteropWorld } from './helpers.ts';

/**
 * MQTT over WebSocket over TLS with Eclipse paho-mqtt for Python (Debian python3-paho-mqtt): the client
 * verifies the stack's server certificate against the root CA and upgrades on a SigV4-presigned path,
 * as a client written for AWS IoT's `wss://<endpoint>/mqtt` does.
 */

const SCRIPT = `
import json, os, queue, ssl, sys
import paho.mqtt.client as mqtt

got, subscribed = queue.Queue(), queue.Queue()

def on_connect(client, userdata, flags, rc, properties=None):
    if rc != 0:
        print('CONNACK %s' % rc, file=sys.stderr)
        sys.exit(2)
    client.subscribe(os.environ['TOPIC'], 1)

def on_subscribe(client, userdata, mid, granted_qos, properties=None):
    subscribed.put(list(granted_qos))

def on_message(client, userdata, msg):
    got.put(msg.payload.decode('utf-8'))

try:  # paho-mqtt >= 2 asks which callback signatures to use
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id='paho-wss-watch', transport='websockets')
except AttributeError:  # paho-mqtt 1.x (Debian bookworm ships 1.6.1)
    client = mqtt.Client(client_id='paho-wss-watch', transport='websockets')
client.tls_set(ca_certs=os.environ['CA'], tls_version=ssl.PROTOCOL_TLS_CLIENT)
client.ws_set_options(path=os.environ['WS_PATH'])
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.connect(os.environ['HOST'], int(os.environ['PORT']), keepalive=60)
client.loop_start()
out = {'granted': subscribed.get(timeout=15)}
print('SUBSCRIBED', flush=True)
out['message'] = got.get(timeout=15)
client.loop_stop()
client.disconnect()
print(json.dumps(out))
`;

describe('paho-mqtt (Python) over wss:// (TLS + SigV4)', () => {
  let w: InteropWorld;
  before(async () => {
    requirePaho();
    w = await startInteropWorld('paho-wss');
  });
  after(async () => {
    await w?.close();
  });

  test('watches a thing publish its progress', async () => {
    const thing = 'Cam_paho_wss';
    await w.stack.ensureThing(thing);
    const ep = w.endpoints;
    assert.ok(ep.wss, 'endpoints.json has wss');
    const signed = new URL(
      presignWebSocketUrlSync(
        ep.wss.url,
        { accessKeyId: ep.iot.accessKeyId, secretAccessKey: ep.iot.secretAccessKey },
        ep.region,
      ),
    );
    const script = join(w.dir, 'paho_wss.py');
    await writeFile(script, SCRIPT);
    const topic = `CarVi/test/firmware/${thing}`;
    const watcher = run(SYSTEM_PYTHON, [script], {
      timeoutMs: 60_000,
      env: {
        HOST: signed.hostname,
        PORT: signed.port,
        WS_PATH: `${signed.pathname}${signed.search}`,
        CA: ep.rootCA,
        TOPIC: 'CarVi/test/firmware/+',
      },
    });
    const identity = ep.things[thing];
    assert.ok(identity);
    const device = await mqtt.connectAsync(`mqtts://127.0.0.1:${ep.mqtt.port}`, {
      ca: await readFile(ep.rootCA, 'utf8'),
      cert: await readFile(identity.cert, 'utf8'),
      key: await readFile(identity.key, 'utf8'),
      servername: 'localhost',
      clientId: thing,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    try {
      // Publish until the watcher has it (it may still be subscribing); at most ~20 s.
      let r: Awaited<typeof watcher> | undefined;
      void watcher.then((res) => {
        r = res;
      });
      for (let i = 0; i < 80 && r === undefined; i++) {
        await device.publishAsync(topic, '{"Progress":"33.3 %"}', { qos: 1 });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const result = await watcher;
      assert.equal(result.code, 0, `python exited ${result.code}\n${result.stderr}`);
      const out = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as {
        granted: number[];
        message: string;
      };
      assert.deepEqual(out.granted, [1]);
      assert.equal(out.message, '{"Progress":"33.3 %"}');
    } finally {
      await device.endAsync(true);
    }
  });
});
