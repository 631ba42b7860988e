/** Control-plane operations on things and thing groups (AWS IoT registry API). */
import { randomUUID } from 'node:crypto';
import type { JobsContext } from './context.ts';
import {
  cpErr,
  groupOrThrow,
  pageOf,
  requireGroupName,
  requireThingName,
  thingOrThrow,
} from './control-plane-common.ts';
import { queueExecution } from './executions.ts';
import type { JobsControlPlane, ThingGroupRecord, ThingRecord } from './types.ts';

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
        // CONTINUOUS jobs reach things added to their groups later (AWS "Continuous jobs").
        for (const job of store.activeContinuousJobs()) {
          if (job.targets.includes(g.thingGroupArn)) queueExecution(ctx, job, t.thingName, at, out);
        }
      });
    },
    listThingsInThingGroup(name, page) {
      groupOrThrow(ctx, name);
      return pageOf(page, (after, limit) => store.listMembers(name, after, limit));
    },
  };
}
