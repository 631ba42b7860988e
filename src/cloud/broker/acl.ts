import { JOBS_PREFIX, progressTopic, THING_NAME_PATTERN } from '../../shared/topics.ts';
import type { ClientIdentity } from './types.ts';

/**
 * The broker's authorization, modelled on the AWS IoT policy a fleet would attach to its devices, with
 * `${iot:Connection.Thing.ThingName}` standing for the connected thing (AWS IoT developer guide, "Policy
 * variables" and "Jobs policy examples"):
 *
 *   thing:    iot:Publish / iot:Receive  on topic/$aws/things/${ThingName}/jobs/*  and topic/<prefix>/${ThingName}
 *             iot:Subscribe              on topicfilter/$aws/things/${ThingName}/jobs/*  and topicfilter/<prefix>/${ThingName}
 *   operator: iot:Subscribe / iot:Receive on <prefix>/+, <prefix>/#, <prefix>/<thing>,
 *             $aws/things/+|<thing>/jobs/notify and .../notify-next; no iot:Publish.
 *
 * Subscribe rules compare the topic FILTER text, as AWS does for `topicfilter/` resources: a thing's
 * `$aws/things/+/jobs/#` is denied even though it would also match its own topics, which is what keeps a
 * thing away from every other thing's accepted/rejected replies.
 */

export interface AclOptions {
  progressPrefix: string;
}

/**
 * Jobs topics that only the Jobs service publishes (AWS's reserved-topic table allows only Subscribe on
 * them): a device publishing there would impersonate the service.
 */
function isServiceToDeviceSuffix(rest: string): boolean {
  return (
    rest === 'notify' || rest === 'notify-next' || rest.endsWith('/accepted') || rest.endsWith('/rejected')
  );
}

/** A Jobs reply or notification topic of any thing: `$aws/things/<thing>/jobs/(notify|notify-next|…/accepted|…/rejected)`. */
export function isServiceToDeviceTopic(topic: string): boolean {
  const m = /^\$aws\/things\/[^/]+\/jobs\/(.+)$/.exec(topic);
  return m?.[1] !== undefined && isServiceToDeviceSuffix(m[1]);
}

/** The built-in policy of the stack's CN-named certificates (certificate identities are never granted here). */
export function canPublish(identity: ClientIdentity, topic: string, opts: AclOptions): boolean {
  // Operators (and WebSocket / anonymous watchers) observe; they never publish (no iot:Publish).
  if (identity.kind !== 'thing') return false;
  const thing = identity.thingName;
  if (topic === progressTopic(thing, opts.progressPrefix)) return true;
  const root = `${JOBS_PREFIX(thing)}/`;
  if (!topic.startsWith(root)) return false;
  const rest = topic.slice(root.length);
  return rest.length > 0 && !isServiceToDeviceSuffix(rest);
}

export function canSubscribe(identity: ClientIdentity, filter: string, opts: AclOptions): boolean {
  const prefix = opts.progressPrefix;
  if (identity.kind === 'thing') {
    const thing = identity.thingName;
    if (filter === progressTopic(thing, prefix)) return true;
    // Anything inside the thing's own jobs subtree, wildcards included (`.../jobs/#`, `.../jobs/+/get/accepted`).
    const root = `${JOBS_PREFIX(thing)}/`;
    return filter.startsWith(root) && filter.length > root.length;
  }
  if (identity.kind !== 'operator') return false;
  if (filter === `${prefix}/+` || filter === `${prefix}/#`) return true;
  if (filter.startsWith(`${prefix}/`)) {
    return THING_NAME_PATTERN.test(filter.slice(prefix.length + 1));
  }
  const m = /^\$aws\/things\/([^/]+)\/jobs\/(notify|notify-next)$/.exec(filter);
  if (m) {
    const who = m[1] ?? '';
    return who === '+' || THING_NAME_PATTERN.test(who);
  }
  return false;
}
