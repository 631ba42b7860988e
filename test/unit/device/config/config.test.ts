import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { envName, resolveAgentConfig } from '../../../../src/device/config/agent-config.ts';
import { ConfigError } from '../../../../src/shared/errors.ts';
import { base, fails } from './config-fixture.ts';

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
  test('install / reboot / health / rollback, slots, trusted keys, device type: flags, env and defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ota-cfg-'));
    try {
      const d = resolveAgentConfig({ flags: base, cwd: '/work' });
      assert.equal(d.hookTimeoutMs, 300_000);
      assert.equal(d.maxBootAttempts, 3);
      assert.equal(d.downloadRetryWindowMs, 300_000);
      assert.deepEqual(d.trustedKeys, []);
      assert.equal(d.installCmd, undefined);
      const k1 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const k2 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pub1 = k1.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const pub2 = k2.publicKey.export({ type: 'spki', format: 'pem' }) as string;
      await writeFile(join(dir, 'k1.pub'), pub1);
      await writeFile(join(dir, 'k2.pub'), pub2);
      const env = {
        OTA_INSTALL_CMD: 'rauc install "$OTA_FILE"',
        OTA_HOOK_TIMEOUT_MS: '60000',
        OTA_MAX_BOOT_ATTEMPTS: '5',
        OTA_TRUSTED_KEYS: `${join(dir, 'k1.pub')},${join(dir, 'k2.pub')}`,
        OTA_DEVICE_TYPE: 'CV150-C3',
      };
      const c = resolveAgentConfig({ flags: { ...base, healthCmd: 'true' }, env, cwd: dir });
      assert.equal(c.installCmd, 'rauc install "$OTA_FILE"');
      assert.equal(c.healthCmd, 'true');
      assert.equal(c.hookTimeoutMs, 60_000);
      assert.equal(c.maxBootAttempts, 5);
      assert.deepEqual(c.trustedKeys, [pub1.trim(), pub2.trim()]);
      assert.equal(c.deviceType, 'CV150-C3');
      // PEM text with two keys in one variable; a flag list of paths
      const t = resolveAgentConfig({ flags: base, env: { OTA_TRUSTED_KEYS: `${pub1}\n${pub2}` } });
      assert.equal(t.trustedKeys.length, 2);
      const f = resolveAgentConfig({ flags: { ...base, trustedKeys: ['k1.pub'] }, cwd: dir });
      assert.equal(f.trustedKeys.length, 1);
      const slots = resolveAgentConfig({ flags: { ...base, slots: 'ab' }, cwd: dir });
      assert.equal(slots.slots, join(dir, 'ab'));
      fails(
        () => resolveAgentConfig({ flags: { ...base, slots: 'ab', installCmd: 'x' } }),
        'slots',
        /installCmd/,
      );
      fails(() => resolveAgentConfig({ flags: { ...base, rebootCmd: 'a\nb' } }), 'rebootCmd', /one line/);
      fails(() => resolveAgentConfig({ flags: { ...base, maxBootAttempts: 0 } }), 'maxBootAttempts', /1-100/);
      fails(() => resolveAgentConfig({ flags: { ...base, deviceType: 'a b' } }), 'deviceType', /must match/);
      const priv = k1.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      fails(
        () => resolveAgentConfig({ flags: { ...base, trustedKeys: [priv] } }),
        'trustedKeys',
        /not a private key/,
      );
      fails(
        () => resolveAgentConfig({ flags: { ...base, trustedKeys: ['/nope.pem'] } }),
        'trustedKeys',
        /cannot read/,
      );
      assert.equal(envName('downloadRetryWindowMs'), 'OTA_DOWNLOAD_RETRY_WINDOW_MS');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
