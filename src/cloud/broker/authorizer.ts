import type { Logger } from '../../shared/log.ts';
import { type AclOptions, canPublish, canSubscribe, isServiceToDeviceTopic } from './acl.ts';
import type { CertificateAuthority, ClientIdentity, ClientIdPolicy, PolicyContext } from './types.ts';

/**
 * Every authorization decision of the broker, for both kinds of certificate:
 * - the stack's own certificates (CN = thing name, or the operator): the built-in policy of acl.ts, plus
 *   the client-id binding of `clientIds`;
 * - certificates registered through the control plane: the IoT policies attached to them, evaluated by the
 *   registry with `${iot:ClientId}` and `${iot:Connection.Thing.ThingName}` bound for this connection.
 *
 * Rules that no policy can lift, as on AWS: QoS and size limits (broker.ts), and the Jobs service's reply
 * and notification topics, which only the service publishes (AWS's reserved-topic table allows devices
 * only to subscribe to them).
 */

export type ConnectDecision = { ok: true; identity: ClientIdentity } | { ok: false; reason: string };

export interface Authorizer {
  /** CONNECT: the identity the connection has from now on, or why it is refused (return code 5). */
  connect(identity: ClientIdentity | undefined, clientId: string): ConnectDecision;
  canPublish(identity: ClientIdentity, clientId: string, topic: string): boolean;
  canSubscribe(identity: ClientIdentity, clientId: string, filter: string): boolean;
  /** iot:Receive, checked per delivered message; the built-in policy grants it with the subscription. */
  canReceive(identity: ClientIdentity, clientId: string, topic: string): boolean;
}

export interface AuthorizerOptions {
  acl: AclOptions;
  clientIds: ClientIdPolicy;
  isRegistered: (thingName: string) => boolean;
  certificates?: CertificateAuthority;
  log: Logger;
}

export function createAuthorizer(opts: AuthorizerOptions): Authorizer {
  const { certificates, isRegistered } = opts;

  const context = (identity: ClientIdentity, clientId: string): PolicyContext =>
    identity.kind === 'thing' ? { clientId, thingName: identity.thingName } : { clientId };

  /** The certificate id when the connection is governed by attached policies, else undefined. */
  const policyGoverned = (identity: ClientIdentity): string | undefined =>
    identity.kind === 'certificate'
      ? identity.certificateId
      : identity.kind === 'thing'
        ? identity.certificateId
        : undefined;

  const allowed = (
    identity: ClientIdentity,
    clientId: string,
    action: 'iot:Publish' | 'iot:Subscribe' | 'iot:Receive',
    resource: string,
  ): boolean => {
    const certificateId = policyGoverned(identity);
    if (certificateId === undefined || !certificates) return false;
    try {
      return certificates.isAllowed(certificateId, action, resource, context(identity, clientId));
    } catch (err) {
      opts.log.error({ err, action, resource }, 'policy evaluation threw; denying');
      return false;
    }
  };

  const connectRegistered = (certificateId: string, clientId: string): ConnectDecision => {
    if (!certificates) return { ok: false, reason: 'no certificate registry' };
    const status = certificates.certificateStatus(certificateId);
    if (status !== 'ACTIVE')
      return { ok: false, reason: `certificate ${certificateId} is ${status ?? 'not registered'}` };
    let thingName = certificates.thingFor(certificateId, clientId);
    // A thing deleted since AttachThingPrincipal no longer resolves the thing policy variables.
    if (thingName !== undefined && !isRegistered(thingName)) thingName = undefined;
    const ctx: PolicyContext = thingName === undefined ? { clientId } : { clientId, thingName };
    if (!certificates.isAllowed(certificateId, 'iot:Connect', `client/${clientId}`, ctx)) {
      return {
        ok: false,
        reason: `the certificate's policies do not allow iot:Connect on client/${clientId}`,
      };
    }
    return {
      ok: true,
      identity:
        thingName === undefined
          ? { kind: 'certificate', certificateId }
          : { kind: 'thing', thingName, certificateId },
    };
  };

  return {
    connect(identity, clientId) {
      if (!identity) return { ok: false, reason: 'no verified identity on this connection' };
      try {
        if (identity.kind === 'certificate') return connectRegistered(identity.certificateId, clientId);
        if (identity.kind === 'thing') {
          if (!isRegistered(identity.thingName)) {
            return { ok: false, reason: `thing ${identity.thingName} is not registered` };
          }
          if (opts.clientIds === 'thing-name' && clientId !== identity.thingName) {
            return {
              ok: false,
              reason: `client id ${JSON.stringify(clientId)} is not the certificate's thing name ${identity.thingName}`,
            };
          }
          return { ok: true, identity };
        }
        if (opts.clientIds === 'thing-name' && isRegistered(clientId)) {
          return { ok: false, reason: `client id ${JSON.stringify(clientId)} is a thing's name` };
        }
        return { ok: true, identity };
      } catch (err) {
        opts.log.error({ err }, 'CONNECT authorization threw; refusing');
        return { ok: false, reason: 'authorization failed' };
      }
    },

    canPublish(identity, clientId, topic) {
      if (policyGoverned(identity) === undefined) return canPublish(identity, topic, opts.acl);
      if (isServiceToDeviceTopic(topic)) return false;
      return allowed(identity, clientId, 'iot:Publish', `topic/${topic}`);
    },

    canSubscribe(identity, clientId, filter) {
      if (policyGoverned(identity) === undefined) return canSubscribe(identity, filter, opts.acl);
      return allowed(identity, clientId, 'iot:Subscribe', `topicfilter/${filter}`);
    },

    canReceive(identity, clientId, topic) {
      if (policyGoverned(identity) === undefined) return true;
      return allowed(identity, clientId, 'iot:Receive', `topic/${topic}`);
    },
  };
}
