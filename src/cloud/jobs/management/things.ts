/** Control-plane operations on things and thing groups (AWS IoT registry API). */
import { randomUUID } from 'node:crypto';
import type { JobsContext } from '../context.ts';
import { endExecution, queueExecution } from '../lifecycle/executions.ts';
import { afterTerminal, maybeComplete } from '../lifecycle/outcomes.ts';
import type { Outbound } from '../mqtt/outbound.ts';
import type { JobsControlPlane, ThingGroupRecord, ThingRecord } from '../types.ts';
import { cpErr, groupOrThrow, pageOf, requireGroupName, requireThingName, thingOrThrow } from './common.ts';

const ATTRIBUTE_KEY = /^[a-zA-Z0-9_.,@/:#-]{1,128}$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#-]{0,800}$/;

type ThingOperations = Pick<
  JobsControlPlane,
  | 'createThing'
  | 'describeThing'
  | 'listThings'
  | 'createThingGroup'
  | 'describeThingGroup'
  | 'addThingToThingGroup'
  | 'listThingsInThingGroup'
  | 'removeThingFromThingGroup'
  | 'deleteThing'
>;

function validateAttributes(attributes: Record<string, string>): void {
  const entries = Object.entries(attributes);
  if (entries.length > 50) throw cpErr('InvalidRequestException', 'attributes: at most 50 entries');
  for (const [k, v] of entries) {
    if (!ATTRIBUTE_KEY.test(k)) {
      throw cpErr('InvalidRequestException', `attribute name ${k} must match ${ATTRIBUTE_KEY.source}`);
    }
    if (typeof v !== 'string' || !ATTRIBUTE_VALUE.test(v)) {
      throw cpErr('InvalidRequestException', `attribute ${k}: value must match ${ATTRIBUTE_VALUE.source}`);
    }
  }
}

export function thingOperations(ctx: JobsContext): ThingOperations {
  const { store } = ctx;
  return {
    createThing(input) {
      const thingName = requireThingName(input.thingName);
      const attributes = input.attributes ?? {};
      validateAttributes(attributes);
      return ctx.mutate((at) => {
        const existing = store.getThing(thingName);
        if (existing !== undefined) {
          // AWS CreateThing is idempotent for identical input, and a conflict otherwise.
          if (JSON.stringify(existing.attributes) === JSON.stringify(attributes)) return existing;
          throw cpErr(
            'ResourceAlreadyExistsException',
            `thing ${thingName} already exists with other attributes`,
          );
        }
        const t: ThingRecord = {
          thingName,
          thingArn: ctx.arn.thing(thingName),
          thingId: randomUUID(),
          attributes: { ...attributes },
          version: 1,
          createdAt: at,
        };
        store.insertThing(t);
        return t;
      });
    },
    describeThing: (thingName) => thingOrThrow(ctx, thingName),
    listThings: (page) => pageOf(page, (after, limit) => store.listThings(after, limit)),

    createThingGroup(input) {
      const name = requireGroupName(input.thingGroupName);
      if (
        input.description !== undefined &&
        (typeof input.description !== 'string' || input.description.length > 2028)
      ) {
        throw cpErr('InvalidRequestException', 'description must be at most 2028 characters');
      }
      return ctx.mutate((at) => {
        const existing = store.getGroup(name);
        if (existing !== undefined) {
          if (existing.description === input.description) return existing;
          throw cpErr(
            'ResourceAlreadyExistsException',
            `thing group ${name} already exists with another description`,
          );
        }
        const g: ThingGroupRecord = {
          thingGroupName: name,
          thingGroupArn: ctx.arn.group(name),
          thingGroupId: randomUUID(),
          version: 1,
          createdAt: at,
        };
        if (input.description !== undefined) g.description = input.description;
        store.insertGroup(g);
        return g;
      });
    },
    describeThingGroup: (name) => groupOrThrow(ctx, name),
    addThingToThingGroup(input) {
      ctx.mutate((at, out) => {
        const g = groupOrThrow(ctx, input.thingGroupName);
        const t = thingOrThrow(ctx, input.thingName);
        if (!store.addMember(g.thingGroupName, t.thingName)) return;
        // CONTINUOUS jobs reach things added to their groups later, at once, whatever the rollout rate
        // (AWS "Job rollout rates for continuous jobs"); not once the rollout has ended (endTime).
        for (const job of store.activeContinuousJobs()) {
          if (job.targets.includes(g.thingGroupArn) && job.rollout?.ended !== true) {
            queueExecution(ctx, job, t.thingName, at, out);
          }
        }
      });
    },
    removeThingFromThingGroup(input) {
      ctx.mutate((at, out) => {
        const g = groupOrThrow(ctx, input.thingGroupName);
        const t = thingOrThrow(ctx, input.thingName);
        if (!store.removeMember(g.thingGroupName, t.thingName)) return;
        // AWS "Job execution states", REMOVED: the thing is no longer a target of a CONTINUOUS job.
        const groups = new Set(store.groupsOf(t.thingName).map((name) => ctx.arn.group(name)));
        for (const job of store.activeContinuousJobs()) {
          if (!job.targets.includes(g.thingGroupArn)) continue;
          const stillTarget = job.targets.includes(t.thingArn) || job.targets.some((arn) => groups.has(arn));
          if (!stillTarget) removeFromJob(ctx, job.jobId, t.thingName, at, out);
        }
      });
    },
    deleteThing(thingName, options) {
      requireThingName(thingName);
      const { expectedVersion } = options;
      if (expectedVersion !== undefined && (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0)) {
        throw cpErr('InvalidRequestException', 'expectedVersion must be a whole number');
      }
      const deleted = ctx.mutate((at) => {
        const t = store.getThing(thingName);
        // AWS DeleteThing: deleting a thing that does not exist succeeds.
        if (t === undefined) return false;
        if (expectedVersion !== undefined && expectedVersion !== t.version) {
          throw cpErr(
            'VersionConflictException',
            `expectedVersion ${expectedVersion} does not match the version of thing ${thingName} (${t.version})`,
          );
        }
        // Its pending executions end REMOVED (it is no longer a target), so SNAPSHOT jobs can complete; it
        // leaves every rollout backlog. Nothing is sent to a thing that no longer exists.
        const discard: Outbound[] = [];
        const waiting = store.rollout.jobsWaitingFor(thingName);
        for (const jobId of waiting) store.rollout.dropFromBacklog(jobId, thingName);
        for (const e of store.pendingForThing(thingName)) removeFromJob(ctx, e.jobId, thingName, at, discard);
        store.deleteThing(thingName);
        for (const jobId of waiting) maybeComplete(ctx, jobId, at);
        return true;
      });
      if (deleted) ctx.onThingDeleted(thingName);
    },
    listThingsInThingGroup(name, page) {
      groupOrThrow(ctx, name);
      return pageOf(page, (after, limit) => store.listMembers(name, after, limit));
    },
  };
}

/** The thing's pending execution of the job becomes REMOVED; a thing still waiting leaves the backlog. */
function removeFromJob(
  ctx: JobsContext,
  jobId: string,
  thingName: string,
  at: number,
  out: Outbound[],
): void {
  ctx.store.rollout.dropFromBacklog(jobId, thingName);
  const e = ctx.store.getExecution(jobId, thingName);
  if (e === undefined) return;
  const next = endExecution(ctx, e, 'REMOVED', at, out);
  if (next !== undefined) afterTerminal(ctx, next, at, out);
}
