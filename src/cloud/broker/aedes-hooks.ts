/**
 * The aedes hooks that make the broker AWS IoT's (the rules are listed at startBroker, broker.ts): CONNECT
 * by identity and client id, PUBLISH within AWS IoT's limits and the policy, SUBSCRIBE by policy (QoS 2
 * granted as 1), forwarding only what the receiver may read, and claimed topics handed to their service.
 */
import type { AedesOptions, AedesPublishPacket, AuthenticateError, Client, Subscription } from 'aedes';
import { OtaError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { Authorizer } from './authorizer.ts';
import type { ClientIdentity, TopicService } from './types.ts';

/** AWS IoT Core: MQTT payload ≤ 128 KB, topic ≤ 256 bytes ("AWS IoT Core message broker limits"). */
export const MAX_PAYLOAD_BYTES = 128 * 1024;
export const MAX_TOPIC_BYTES = 256;
/**
 * Largest Remaining Length (MQTT 3.1.1 §2.2.3) of any packet: a PUBLISH of the largest payload needs
 * 2 + 256 (topic) + 2 (packet id) bytes more; a CONNECT with a will of that size needs a little more for
 * client id, will topic, user name and password. Anything larger can only be refused, so it is refused
 * from its fixed header.
 */
export const MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 4096;

export class BrokerError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_BROKER', message, options);
  }
}

function notAuthorized(message: string): AuthenticateError {
  // 5 = "Connection Refused, not authorized" (MQTT 3.1.1 §3.2.2.3).
  return Object.assign(new Error(message), { returnCode: 5 }) as AuthenticateError;
}

export interface HookContext {
  authorizer: Authorizer;
  identityOf(client: Client | null): ClientIdentity | undefined;
  /** Remembers the identity CONNECT settled for this connection. */
  setIdentity(client: Client, identity: ClientIdentity): void;
  /** The topic service that claims a topic, if any. */
  claimant(topic: string): TopicService | undefined;
  counters: { publishesIn: number; publishesOut: number };
  log: Logger;
}

export function aedesHooks(
  h: HookContext,
): Pick<
  AedesOptions,
  'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward' | 'published'
> {
  const { authorizer, identityOf, claimant, counters, log } = h;
  return {
    authenticate(client, _username, _password, done) {
      const decision = authorizer.connect(identityOf(client), client.id);
      if (!decision.ok) {
        log.info({ clientId: client.id, reason: decision.reason }, 'CONNECT refused (return code 5)');
        return done(notAuthorized(decision.reason), false);
      }
      h.setIdentity(client, decision.identity);
      done(null, true);
    },

    authorizePublish(client, packet, done) {
      const identity = identityOf(client);
      if (!client || !identity) return done(new BrokerError('publish without identity'));
      if (packet.qos === 2)
        return done(new BrokerError('QoS 2 is not supported (AWS IoT: QoS 0 and 1 only)'));
      // AWS IoT Core message broker limits (docs/protocol.md, Message broker): payload ≤ 128 KB, topic ≤ 256
      // bytes.
      const payloadBytes =
        typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
      if (payloadBytes > MAX_PAYLOAD_BYTES || Buffer.byteLength(packet.topic) > MAX_TOPIC_BYTES) {
        log.info(
          { identity, topic: packet.topic.slice(0, 300), payloadBytes },
          'PUBLISH over AWS IoT limits; closing connection',
        );
        return done(
          new BrokerError(
            `publish over AWS IoT limits (payload ${payloadBytes} > ${MAX_PAYLOAD_BYTES} bytes or topic > ${MAX_TOPIC_BYTES} bytes)`,
          ),
        );
      }
      if (!authorizer.canPublish(identity, client.id, packet.topic)) {
        log.info({ identity, topic: packet.topic }, 'PUBLISH refused by policy; closing connection');
        return done(new BrokerError(`not authorized to publish to ${packet.topic}`));
      }
      counters.publishesIn++;
      if (claimant(packet.topic)) packet.retain = false;
      done(null);
    },

    authorizeSubscribe(client, sub: Subscription, done) {
      const identity = identityOf(client);
      if (!client || !identity || !authorizer.canSubscribe(identity, client.id, sub.topic)) {
        log.info({ identity, filter: sub.topic }, 'SUBSCRIBE denied by policy (SUBACK 0x80)');
        return done(null, null);
      }
      if (sub.qos > 1) sub.qos = 1;
      done(null, sub);
    },

    authorizeForward(client, packet: AedesPublishPacket) {
      // Publishes to a service's topics (Jobs requests) are for the service only.
      if (claimant(packet.topic)) return null;
      const identity = identityOf(client);
      if (client && identity && !authorizer.canReceive(identity, client.id, packet.topic)) return null;
      counters.publishesOut++;
      return packet;
    },

    published(packet, client, done) {
      const identity = identityOf(client);
      if (identity) {
        const service = claimant(packet.topic);
        if (service) {
          try {
            service.onPublish(identity, packet.topic, Buffer.from(packet.payload));
          } catch (err) {
            log.error({ err, topic: packet.topic }, 'TopicService.onPublish threw');
          }
        }
      }
      done(null);
    },
  };
}
