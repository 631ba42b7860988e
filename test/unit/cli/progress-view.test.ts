import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';

/** Cursor moves and line clears (CSI … A/B/C/D/G/H/J/K) start a new piece of the screen: split there. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching terminal escape sequences
const CURSOR_MOVES = /\x1b\[[0-9;]*[ABCDGHJK]/g;

import { deviceFields, FleetProgressView, fitLine, formatEta } from '../../../src/cli/progress-view.ts';
import type { DeviceProgress } from '../../../src/operator/watch.ts';

const MiB = 1024 * 1024;

function device(over: Partial<DeviceProgress> = {}): DeviceProgress {
  return {
    device: '861234567890123',
    topic: 'CarVi/test/firmware/861234567890123',
    percent: 23.51,
    bytes: Math.round(83.2 * MiB * 0.2351),
    total: Math.round(83.2 * MiB),
    bytesPerSecond: 23.5 * MiB,
    etaSeconds: 65,
    state: 'DOWNLOADING',
    messages: 3,
    firstSeenAt: 0,
    lastSeenAt: 0,
    ...over,
  };
}

/** A terminal of `columns` columns, as cli-progress sees one (isTTY, columns). */
function terminal(columns: number) {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += String(chunk);
      cb();
    },
  });
  Object.assign(stream, { isTTY: true, columns });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

/** The lines as they stand on the screen: control sequences removed, split at newlines and carriage returns. */
const screenLines = (raw: string) =>
  stripVTControlCharacters(raw.replace(CURSOR_MOVES, '\n'))
    .split(/[\r\n]/)
    .filter((l) => l.trim() !== '');

test('the ETA is the agent’s, never cli-progress’s own (no `ETA NULL`, `ETA INF` or bare `ETA 14`)', () => {
  assert.equal(formatEta(14), '14s');
  assert.equal(formatEta(65), '1m05s');
  assert.equal(formatEta(3725), '1h02m');
  assert.equal(formatEta(undefined), '--');
  assert.equal(formatEta(null), '--');
  assert.equal(formatEta(Number.POSITIVE_INFINITY), '--');

  const term = terminal(100);
  const view = new FleetProgressView(term.stream);
  view.update(device({ etaSeconds: 14 }));
  view.update(device({ device: 'RaspberryPi_2', etaSeconds: undefined, bytesPerSecond: 0 }));
  view.stop();
  const lines = screenLines(term.text());
  assert.ok(
    lines.some((l) => /^861234567890123 .* ETA 14s DOWNLOADING$/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.some((l) => /^RaspberryPi_2 .* ETA -- DOWNLOADING$/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.every((l) => !/ETA (NULL|INF|\d+ )/.test(l)),
    lines.join('\n'),
  );
});

test('on an 80-column terminal the whole line shows: percent, bytes, rate, ETA and the final state', () => {
  const term = terminal(80);
  const view = new FleetProgressView(term.stream);
  view.update(device());
  view.update(device({ percent: 100, bytes: Math.round(83.2 * MiB), etaSeconds: 0, state: 'SUCCEEDED' }));
  view.stop();
  const lines = screenLines(term.text());
  assert.ok(lines.length > 0);
  for (const l of lines) assert.ok(l.length <= 79, `${l.length} columns: ${l}`);
  const last = lines.at(-1) ?? '';
  assert.match(last, /^861234567890123 \|█+\| 100\.00% 83\.2\/83\.2 MiB 23\.5 MiB\/s ETA 0s SUCCEEDED$/);
});

test('narrower terminals drop the bar, then the byte counts, then shorten the name; never the state', () => {
  const f = deviceFields(device({ device: 'a-very-long-thing-name-for-a-dashcam-0001' }));
  for (const width of [200, 120, 80, 72, 60, 50]) {
    const line = fitLine(f, 0.5, width, 0);
    assert.ok(line.length <= width - 1, `${width}: ${line.length}: ${line}`);
    assert.match(line, /23\.5 MiB\/s ETA 1m05s DOWNLOADING$/, `${width}: ${line}`);
  }
  // Narrower than the essentials: still one line, never wrapped.
  for (const width of [40, 20, 5]) assert.ok(fitLine(f, 0.5, width, 0).length <= width - 1);
  assert.match(fitLine(f, 0.5, 120, 0), /\|█+░+\| {1,2}23\.51% 19\.6\/83\.2 MiB/);
  assert.doesNotMatch(fitLine(f, 0.5, 60, 0), /\|/);
  assert.doesNotMatch(fitLine(f, 0.5, 50, 0), /MiB 23/);
});

test('device names align on the longest one', () => {
  const a = fitLine(deviceFields(device({ device: 'cam1' })), 0.1, 100, 15);
  const b = fitLine(deviceFields(device()), 0.1, 100, 15);
  assert.equal(a.indexOf('|'), b.indexOf('|'));
});
