import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { envName, resolveAgentConfig } from '../../../src/device/config.ts';
import { ConfigError, ValidationError } from '../../../src/shared/errors.ts';

const base = {
  endpoint: 'abc-ats.iot.us-west-2.amazonaws.com',
  cert: '/c.pem',
  key: '/k.pem',
  thingName: 'RaspberryPi_2',
};

const fails = (fn: () => unknown, field: string, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof ValidationError && e.field === field && re.test(e.message));

describe('resolveAgentConfig', () => {
  test('defaults', () => {
    const c = resolveAgentConfig({ flags: base, cwd: '/work' });
    assert.equal(c.port, 8883);
    assert.equal(c.topic, 'CarVi/test/firmware/RaspberryPi_2');
    assert.equal(c.clientId, 'RaspberryPi_2');
    assert.equal(c.progressIntervalMs, 1000);
    assert.equal(c.statusDetailsIntervalMs, 10000);
    assert.equal(c.keepaliveSec, 60);
    assert.equal(c.region, 'us-west-2');
    assert.equal(c.downloadDir, '/work/firmware');
    assert.equal(c.stateDir, '/work/firmware/.ota-state');
    assert.equal(c.once, false);
    assert.equal(c.tz, undefined); // the system's local time, formatted without Intl
  });
  test('fields named in errors', () => {
    fails(() => resolveAgentConfig({ flags: { ...base, thingName: undefined } }), 'thingName', /required/);
    fails(() => resolveAgentConfig({ flags: { ...base, port: 70000 } }), 'port', /must be 1-65535/);
    fails(() => resolveAgentConfig({ flags: { ...base, port: 'x' } }), 'port', /1-65535/);
    fails(
      () => resolveAgentConfig({ flags: { ...base, mode: 'listen' } }),
      'mode',
      /both, publish or subscribe/,
    );
    fails(() => resolveAgentConfig({ flags: { ...base, tz: 'Mars/Olympus' } }), 'tz', /IANA/);
    fails(() => resolveAgentConfig({ flags: { ...base, keepaliveSec: 5 } }), 'keepaliveSec', /30-1200/);
    fails(
      () => resolveAgentConfig({ flags: { ...base, currentVersion: 'abc' } }),
      'currentVersion',
      /version/,
    );
    fails(() => resolveAgentConfig({ flags: { ...base, thingName: 'bad name' } }), 'thingName', /must match/);
    fails(
      () => resolveAgentConfig({ flags: { ...base, roleAlias: 'r' } }),
      'credentialsEndpoint',
      /required/,
    );
  });
  test('flags > env > config file > defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-cfg-'));
    try {
      const file = join(dir, 'agent.json');
      await writeFile(
        file,
        JSON.stringify({ ...base, port: 1111, tz: 'UTC', mode: 'both', currentVersion: 41811019 }),
      );
      const env = { OTA_PORT: '2222', OTA_TZ: 'Asia/Seoul', OTA_ONCE: 'true' };
      const c = resolveAgentConfig({ flags: { port: 3333 }, env, configFile: file });
      assert.equal(c.port, 3333);
      assert.equal(c.tz, 'Asia/Seoul');
      assert.equal(c.mode, 'both');
      assert.equal(c.once, true);
      assert.equal(c.currentVersion, '41811019');
      const c2 = resolveAgentConfig({ env: { ...env, OTA_THING_NAME: 'Cam_9' }, configFile: file });
      assert.equal(c2.port, 2222);
      assert.equal(c2.thingName, 'Cam_9');
      assert.throws(() => resolveAgentConfig({ configFile: join(dir, 'nope.json') }), ConfigError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  test('env names', () => {
    assert.equal(envName('thingName'), 'OTA_THING_NAME');
    assert.equal(envName('currentVersion'), 'OTA_CURRENT_VERSION');
    assert.equal(envName('endpoint'), 'OTA_ENDPOINT');
  });
  test('--local reads endpoints.json for the thing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-cfg-'));
    try {
      const endpoints = {
        region: 'us-west-2',
        mqtt: { host: '127.0.0.1', port: 18883 },
        ws: { url: 'ws://127.0.0.1:1/mqtt' },
        iot: { endpoint: 'http://127.0.0.1:2', accessKeyId: 'A', secretAccessKey: 'S' },
        s3: { endpoint: 'http://127.0.0.1:3', accessKeyId: 'A', secretAccessKey: 'S', bucket: 'b' },
        rootCA: '/ca.pem',
        things: { RaspberryPi_2: { cert: '/t.cert', key: '/t.key' } },
        operator: { cert: '/o.cert', key: '/o.key' },
      };
      await writeFile(join(dir, 'endpoints.json'), JSON.stringify(endpoints));
      const c = resolveAgentConfig({ flags: { local: dir, thingName: 'RaspberryPi_2', roleAlias: 'ota' } });
      assert.equal(c.endpoint, '127.0.0.1');
      assert.equal(c.port, 18883);
      assert.equal(c.cert, '/t.cert');
      assert.equal(c.rootCa, '/ca.pem');
      assert.equal(c.s3Endpoint, 'http://127.0.0.1:3');
      assert.deepEqual(c.s3Credentials, { accessKeyId: 'A', secretAccessKey: 'S' });
      assert.equal(c.credentialsEndpoint, 'https://127.0.0.1:18883');
      fails(
        () => resolveAgentConfig({ flags: { local: dir, thingName: 'Other' } }),
        'thingName',
        /ota thing create/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
