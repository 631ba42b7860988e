import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/shared/log.ts';

function sink(isTTY = false) {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  Object.assign(stream, { isTTY });
  return { stream, lines };
}

/** Counts each key of a JSON line in its raw text (JSON.parse would hide a repeated key). */
function keyCounts(line: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of line.matchAll(/"([^"]+)":/g)) counts.set(m[1] ?? '', (counts.get(m[1] ?? '') ?? 0) + 1);
  return counts;
}

test('a child that repeats a binding of its parent logs the key once, not "thing":"X","thing":"X"', () => {
  const { stream, lines } = sink();
  // What `ota agent` does: the host logger has {thing}, and the agent adds child({thing}) itself.
  const host = createLogger({ destination: stream, base: { thing: 'RaspberryPi_2' } });
  host.child({ thing: 'RaspberryPi_2' }).child({ jobId: 'j1' }).info('downloading');
  assert.equal(lines.length, 1);
  const counts = keyCounts(lines[0] ?? '');
  assert.equal(counts.get('thing'), 1, lines[0]);
  assert.equal(counts.get('jobId'), 1);
  assert.deepEqual(JSON.parse(lines[0] ?? '{}').thing, 'RaspberryPi_2');
});

test('a nested child overrides a key instead of repeating it; the innermost value wins', () => {
  const { stream, lines } = sink();
  const root = createLogger({ destination: stream });
  root.child({ component: 'object-store' }).child({ component: 's3rver' }).warn('x');
  const counts = keyCounts(lines[0] ?? '');
  assert.equal(counts.get('component'), 1, lines[0]);
  const rec = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  assert.equal(rec.component, 's3rver');
  assert.equal(rec.pid, process.pid);
  assert.equal(counts.get('pid'), 1);
});

test('children keep their parent level and their own level option', () => {
  const { stream, lines } = sink();
  const root = createLogger({ destination: stream, level: 'warn' });
  const child = root.child({ a: 1 });
  child.info('hidden');
  child.warn('shown');
  root.child({ b: 2 }, { level: 'debug' }).debug('debug shown');
  assert.deepEqual(
    lines.map((l) => JSON.parse(l).msg),
    ['shown', 'debug shown'],
  );
});

test('JSON off a terminal, human-readable on one (OTA_LOG_FORMAT overrides)', () => {
  const pipe = sink(false);
  createLogger({ destination: pipe.stream }).info({ jobId: 'j1' }, 'hello');
  assert.equal(JSON.parse(pipe.lines[0] ?? '').msg, 'hello');

  const tty = sink(true);
  createLogger({ destination: tty.stream, base: { thing: 'T1' } }).info({ jobId: 'j1' }, 'hello');
  const text = tty.lines.join('\n');
  assert.match(text, /INFO/);
  assert.match(text, /hello/);
  assert.match(text, /jobId.*j1/);
  assert.throws(() => JSON.parse(tty.lines[0] ?? ''));

  const forced = sink(true);
  createLogger({ destination: forced.stream, format: 'json' }).info('x');
  assert.equal(JSON.parse(forced.lines[0] ?? '').msg, 'x');
});
