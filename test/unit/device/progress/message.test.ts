import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  buildProgressMessage,
  formatDuration,
  formatPercent,
  formatStartTime,
  isValidTimeZone,
  ORIGINAL_PROGRESS_KEYS,
  ProgressThrottle,
  pythonJsonDumps,
  pythonRound2,
  sanitizeStatusDetails,
  serializeProgress,
} from '../../../../src/device/progress/message.ts';

// 2018-10-25 17:35:24 in America/Chicago (CDT, UTC-5) = 22:35:24Z
const START = Date.UTC(2018, 9, 25, 22, 35, 24);

describe('progress message', () => {
  test('exact bytes of the original sample message', () => {
    const s = serializeProgress({
      cameraId: 'RaspberryPi_2',
      startedAt: START,
      now: START + (3 * 60 + 52) * 1000 + 400,
      timeZone: 'America/Chicago',
      firmwareVersion: 'CV150-C3_0.6.6',
      firmwareFilename: 'cv150_ubifs.img',
      totalSize: 87232512,
      downloaded: 73601024,
    });
    assert.equal(
      s,
      '{"camera_id": "RaspberryPi_2", "OTA_start_time": "2018-10-25 17:35:24", "Download time": "0 hour 3 min 52 second", "Firmware version": "CV150-C3_0.6.6", "Firmware filename": "cv150_ubifs.img", "Progress": "84.37 %", "Total size": 87232512, "Downloading": 73601024}',
    );
  });
  test('second sample: 85.58 % and the final 100.0 %', () => {
    assert.equal(formatPercent(74649600, 87232512), '85.58 %');
    assert.equal(formatPercent(87232512, 87232512), '100.0 %');
    assert.equal(formatPercent(0, 87232512), '0.0 %');
    assert.equal(formatPercent(1, 2), '50.0 %');
    assert.equal(formatPercent(101, 200), '50.5 %');
    assert.equal(formatPercent(0, 0), '0.0 %');
  });
  test("Python's round(): half-to-even on exact binary ties", () => {
    assert.equal(pythonRound2(0.125), 0.12);
    assert.equal(pythonRound2(0.375), 0.38);
    assert.equal(pythonRound2(2.675), 2.67); // 2.675 is 2.67499999... in binary
    assert.equal(pythonRound2(84.37123), 84.37);
  });
  test('Download time and start time formats, tz respected', () => {
    assert.equal(formatDuration(0), '0 hour 0 min 0 second');
    assert.equal(formatDuration((4 * 60 + 33) * 1000 + 999), '0 hour 4 min 33 second');
    assert.equal(formatDuration((2 * 3600 + 5 * 60 + 7) * 1000), '2 hour 5 min 7 second');
    assert.equal(formatStartTime(START, 'America/Chicago'), '2018-10-25 17:35:24');
    assert.equal(formatStartTime(START, 'UTC'), '2018-10-25 22:35:24');
    assert.equal(formatStartTime(START, 'Asia/Seoul'), '2018-10-26 07:35:24');
    assert.equal(formatStartTime(Date.UTC(2020, 0, 1, 0, 0, 0), 'UTC'), '2020-01-01 00:00:00');
    // No zone = the system's local time, the same as Intl in the system's zone (TZ / /etc/localtime).
    // With TZ='' Intl names the zone "Etc/Unknown", which it cannot format in; local time still works.
    const system = Intl.DateTimeFormat().resolvedOptions().timeZone;
    for (const t of [START, Date.UTC(2020, 6, 1, 12, 0, 0), Date.UTC(1999, 11, 31, 23, 59, 59)]) {
      assert.match(formatStartTime(t), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
      if (isValidTimeZone(system)) assert.equal(formatStartTime(t), formatStartTime(t, system));
    }
  });
  test('original keys first and in order; extras after', () => {
    const m = buildProgressMessage({
      cameraId: 'x',
      startedAt: 0,
      now: 0,
      timeZone: 'UTC',
      firmwareVersion: 'v',
      firmwareFilename: 'f',
      totalSize: 10,
      downloaded: 5,
      extra: { jobId: 'j1', camera_id: 'ignored', bytesPerSecond: 12 },
    });
    assert.deepEqual(Object.keys(m), [...ORIGINAL_PROGRESS_KEYS, 'jobId', 'bytesPerSecond']);
    assert.equal(m.camera_id, 'x');
  });
  test('json.dumps compatibility', () => {
    assert.equal(
      pythonJsonDumps({ a: 1, b: [1, 'x'], c: null, d: true }),
      '{"a": 1, "b": [1, "x"], "c": null, "d": true}',
    );
    assert.equal(pythonJsonDumps('é"\n'), '"\\u00e9\\"\\n"');
  });
});

describe('ProgressThrottle', () => {
  test('first at start, at most one per interval and only on change, always a final', () => {
    let now = 0;
    const sent: [number, boolean][] = [];
    const t = new ProgressThrottle(1000, { now: () => now }, (d, _t, final) => sent.push([d, final]));
    t.start(0, 100);
    t.update(10, 100); // within the interval: dropped
    now = 999;
    t.update(20, 100);
    now = 1000;
    t.update(30, 100); // emitted
    now = 2500;
    t.update(30, 100); // no change: dropped
    now = 2600;
    t.update(40, 100);
    t.update(100, 100); // completion only via finish
    t.finish(100, 100);
    t.finish(100, 100);
    t.update(100, 100);
    assert.deepEqual(sent, [
      [0, false],
      [30, false],
      [40, false],
      [100, true],
    ]);
    assert.equal(t.messagesEmitted, 4);
  });
});

describe('sanitizeStatusDetails', () => {
  test('AWS limits: key pattern, ≤1024 chars, ≤10 entries, no control chars', () => {
    const input: Record<string, unknown> = {
      'bad key': 'x',
      reason: 'y'.repeat(2000),
      ctl: 'a\nb',
      empty: '',
    };
    for (let i = 0; i < 20; i++) input[`k${i}`] = i;
    const out = sanitizeStatusDetails(input);
    assert.equal(out['bad key'], undefined);
    assert.equal(out.reason?.length, 1024);
    assert.equal(out.ctl, 'a b');
    assert.equal(out.empty, undefined);
    assert.equal(Object.keys(out).length, 10);
  });
});
