import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, test } from 'node:test';
import { PacketSizeGuard } from '../../../../src/cloud/broker/packet-limit.ts';
import { varInt } from '../../../helpers/mqtt.ts';

/** A packet of `type` with a body of `n` bytes. */
function packet(n: number, type = 0x30): Buffer {
  return Buffer.concat([Buffer.from([type, ...varInt(n)]), Buffer.alloc(n, 0x61)]);
}

/** Feeds `bytes` split at the given offsets; returns the first refusal or ok. */
function feed(guard: PacketSizeGuard, bytes: Buffer, cuts: number[]) {
  let last = 0;
  for (const cut of [...cuts, bytes.length]) {
    const r = guard.check(bytes.subarray(last, cut));
    if (!r.ok) return r;
    last = cut;
  }
  return { ok: true as const };
}

describe('PacketSizeGuard (MQTT fixed header, Remaining Length §2.2.3)', () => {
  test('packets up to the limit pass, in one chunk and split at every byte', () => {
    const stream = Buffer.concat([
      packet(0, 0xc0),
      packet(10),
      packet(127),
      packet(128),
      packet(1000),
      packet(1000),
    ]);
    assert.deepEqual(new PacketSizeGuard(1000).check(stream), { ok: true });
    for (let cut = 0; cut <= stream.length; cut++) {
      assert.deepEqual(feed(new PacketSizeGuard(1000), stream, [cut]), { ok: true }, `cut at ${cut}`);
    }
    const g = new PacketSizeGuard(1000);
    for (const byte of stream) assert.deepEqual(g.check(Buffer.from([byte])), { ok: true });
  });

  test('a packet one byte over the limit is refused from its header, before any body byte', () => {
    const g = new PacketSizeGuard(1000);
    assert.deepEqual(g.check(Buffer.from([0x30, ...varInt(1001)])), {
      ok: false,
      reason: 'too-large',
      remainingLength: 1001,
    });
    // Sticky: the caller closes the connection; nothing later is accepted.
    assert.equal(g.check(packet(1)).ok, false);
  });

  test('a 250 MB PUBLISH after legal traffic is refused at its header, whatever the chunking', () => {
    const header = Buffer.from([0x30, ...varInt(250 * 1024 * 1024)]);
    const stream = Buffer.concat([packet(50), packet(131_000), header]);
    for (let i = 0; i < 200; i++) {
      const cuts = [randomInt(stream.length), randomInt(stream.length)].sort((a, b) => a - b);
      const r = feed(new PacketSizeGuard(132_000), stream, cuts);
      assert.equal(r.ok, false, `cuts ${cuts}`);
    }
  });

  test('a fifth length byte (continuation bit on the fourth) is malformed', () => {
    const g = new PacketSizeGuard(Number.MAX_SAFE_INTEGER);
    assert.deepEqual(g.check(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), {
      ok: false,
      reason: 'malformed',
    });
  });

  test('fuzz: random legal packet streams in random chunks always pass; one oversized packet is always caught', () => {
    for (let round = 0; round < 200; round++) {
      const limit = randomInt(1, 5000);
      const parts = Array.from({ length: randomInt(1, 20) }, () =>
        packet(randomInt(0, limit + 1), randomInt(1, 15) << 4),
      );
      const legal = Buffer.concat(parts);
      const cuts = Array.from({ length: randomInt(0, 10) }, () => randomInt(legal.length + 1)).sort(
        (a, b) => a - b,
      );
      assert.deepEqual(feed(new PacketSizeGuard(limit), legal, cuts), { ok: true });
      const bad = Buffer.concat([legal, packet(limit + 1 + randomInt(0, 100_000))]);
      assert.equal(feed(new PacketSizeGuard(limit), bad, cuts).ok, false);
    }
  });
});
