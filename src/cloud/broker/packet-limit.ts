/**
 * Refuses an oversized MQTT packet from its fixed header, before its body is buffered.
 *
 * aedes (mqtt-packet) buffers a whole packet before it parses it, and the broker's 128 KB payload limit
 * (authorizePublish) runs only after that: a peer that announces a 250 MB PUBLISH makes the broker hold
 * 250 MB. Every MQTT control packet starts with a fixed header whose Remaining Length (MQTT 3.1.1 §2.2.3,
 * a variable-byte integer of 1–4 bytes, 7 bits each, least significant first) says how many bytes follow.
 * This scanner walks the byte stream packet by packet, reading only the headers and skipping the bodies by
 * count, so it costs O(packets), not O(bytes), and holds no data.
 */

export type PacketCheck =
  | { ok: true }
  | { ok: false; reason: 'too-large'; remainingLength: number }
  | { ok: false; reason: 'malformed' };

const OK: PacketCheck = { ok: true };
/** §2.2.3: the Remaining Length field is at most four bytes. */
const MAX_LENGTH_BYTES = 4;

export class PacketSizeGuard {
  /** 'type': next byte starts a packet; 'length': inside the Remaining Length; 'body': skipping bytes. */
  #state: 'type' | 'length' | 'body' = 'type';
  #value = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #bodyLeft = 0;
  #failed: PacketCheck | undefined;

  /** `maxRemainingLength`: the largest Remaining Length accepted (variable header + payload). */
  constructor(readonly maxRemainingLength: number) {}

  /**
   * Feeds the next chunk of the stream. Once a packet is refused every later call answers the same: the
   * caller is expected to close the connection.
   */
  check(chunk: Uint8Array): PacketCheck {
    if (this.#failed) return this.#failed;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.#state === 'body') {
        const skip = Math.min(this.#bodyLeft, n - i);
        this.#bodyLeft -= skip;
        i += skip;
        if (this.#bodyLeft === 0) this.#state = 'type';
        continue;
      }
      if (this.#state === 'type') {
        i++;
        this.#state = 'length';
        this.#value = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
        continue;
      }
      const byte = chunk[i++] ?? 0;
      this.#value += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes++;
      // The value only grows with further bytes: refuse as soon as it is over the limit.
      if (this.#value > this.maxRemainingLength) {
        this.#failed = { ok: false, reason: 'too-large', remainingLength: this.#value };
        return this.#failed;
      }
      if (byte & 0x80) {
        if (this.#lengthBytes === MAX_LENGTH_BYTES) {
          this.#failed = { ok: false, reason: 'malformed' };
          return this.#failed;
        }
        continue;
      }
      this.#bodyLeft = this.#value;
      this.#state = this.#bodyLeft > 0 ? 'body' : 'type';
    }
    return OK;
  }
}

/** aedes' packet parser (internal; used to see packets as they leave it, before aedes acts on them). */
interface AedesParser {
  parse(buf: Buffer): number;
  prependListener(
    event: 'packet',
    listener: (packet: { cmd?: string; subscriptions?: { qos: number }[] }) => void,
  ): void;
}

/**
 * Two hooks on the packet parser of an aedes client (internal `_parser`); false when it is missing, and the
 * caller then refuses the connection rather than serve it unguarded:
 * - every chunk passes a PacketSizeGuard before the parser buffers it; `onRefused` closes the connection;
 * - QoS 2 SUBSCRIBE requests are capped at QoS 1 as they leave the parser, because aedes takes the
 *   SUBACK's granted QoS from the request before authorizeSubscribe runs (AWS IoT: QoS 0 and 1 only).
 */
export function hookParser(
  client: object,
  maxRemainingLength: number,
  onRefused: (check: Exclude<PacketCheck, { ok: true }>) => void,
): boolean {
  const parser = (client as { _parser?: AedesParser })._parser;
  if (!parser || typeof parser.parse !== 'function' || typeof parser.prependListener !== 'function')
    return false;
  const guard = new PacketSizeGuard(maxRemainingLength);
  const parse = parser.parse.bind(parser);
  parser.parse = (buf: Buffer) => {
    const check = guard.check(buf);
    if (check.ok) return parse(buf);
    onRefused(check);
    return 0;
  };
  parser.prependListener('packet', (packet) => {
    if (packet.cmd === 'subscribe' && packet.subscriptions) {
      for (const s of packet.subscriptions) if (s.qos > 1) s.qos = 1;
    }
  });
  return true;
}
