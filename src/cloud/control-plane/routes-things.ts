/** Control-plane routes of the AWS IoT registry: things, thing groups, and DescribeEndpoint. */
import { z } from 'zod';
import { ControlPlaneError, type ThingRecord } from '../jobs/types.ts';
import {
  booleanQuery,
  integerQuery,
  invalid,
  label,
  nameFromArn,
  page,
  pageQuery,
  parseBody,
  parseQuery,
  queryString,
  type Route,
  refuseUnsupported,
  sec,
  stringMap,
  tagList,
} from './route-kit.ts';

const CreateThingBody = z.object({
  attributePayload: z.object({ attributes: stringMap.optional(), merge: z.boolean().optional() }).optional(),
});
const CreateThingGroupBody = z.object({
  thingGroupProperties: z.object({ thingGroupDescription: z.string().optional() }).optional(),
  tags: tagList.optional(),
});
/** AddThingToThingGroup and RemoveThingFromThingGroup: each side by name or by ARN. */
const ThingGroupMembershipBody = z.object({
  thingGroupName: z.string().optional(),
  thingGroupArn: z.string().optional(),
  thingName: z.string().optional(),
  thingArn: z.string().optional(),
  overrideDynamicGroups: z.boolean().optional(),
});

function groupAndThing(b: z.output<typeof ThingGroupMembershipBody>): {
  thingGroupName: string;
  thingName: string;
} {
  const groupRef = b.thingGroupName ?? b.thingGroupArn;
  const thingRef = b.thingName ?? b.thingArn;
  if (groupRef === undefined) throw invalid('thingGroupName: thingGroupName or thingGroupArn is required');
  if (thingRef === undefined) throw invalid('thingName: thingName or thingArn is required');
  return {
    thingGroupName: b.thingGroupName ?? nameFromArn(groupRef, 'thinggroup'),
    thingName: b.thingName ?? nameFromArn(thingRef, 'thing'),
  };
}

function thingAttribute(t: ThingRecord) {
  return { thingName: t.thingName, thingArn: t.thingArn, attributes: t.attributes, version: t.version };
}

export const THING_ROUTES: readonly Route[] = [
  {
    operation: 'CreateThing',
    method: 'POST',
    pattern: '/things/{thingName}',
    handle(ctx, req) {
      refuseUnsupported(req.body, ['thingTypeName', 'billingGroupName'], 'CreateThing');
      const b = parseBody(CreateThingBody, req.body);
      const attributes = b.attributePayload?.attributes;
      const t = ctx.controlPlane.createThing({
        thingName: label(req, 'thingName'),
        ...(attributes !== undefined && { attributes }),
      });
      return { thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId };
    },
  },
  {
    operation: 'DescribeThing',
    method: 'GET',
    pattern: '/things/{thingName}',
    handle(ctx, req) {
      const t = ctx.controlPlane.describeThing(label(req, 'thingName'));
      // AWS reports the thing name as the default MQTT client ID.
      return { defaultClientId: t.thingName, thingId: t.thingId, ...thingAttribute(t) };
    },
  },
  {
    operation: 'DeleteThing',
    method: 'DELETE',
    pattern: '/things/{thingName}',
    handle(ctx, req) {
      const q = parseQuery({ expectedVersion: integerQuery.optional() }, req.query);
      ctx.controlPlane.deleteThing(
        label(req, 'thingName'),
        q.expectedVersion !== undefined ? { expectedVersion: q.expectedVersion } : {},
      );
      return {};
    },
  },
  {
    operation: 'ListThings',
    method: 'GET',
    pattern: '/things',
    handle(ctx, req) {
      refuseUnsupported(
        req.query,
        ['attributeName', 'attributeValue', 'thingTypeName', 'usePrefixAttributeValue'],
        'ListThings',
      );
      const q = parseQuery(pageQuery, req.query);
      const result = ctx.controlPlane.listThings(page(q));
      return { things: result.items.map(thingAttribute), nextToken: result.nextToken };
    },
  },
  {
    operation: 'AddThingToThingGroup',
    method: 'PUT',
    pattern: '/thing-groups/addThingToThingGroup',
    handle(ctx, req) {
      ctx.controlPlane.addThingToThingGroup(groupAndThing(parseBody(ThingGroupMembershipBody, req.body)));
      return {};
    },
  },
  {
    operation: 'RemoveThingFromThingGroup',
    method: 'PUT',
    pattern: '/thing-groups/removeThingFromThingGroup',
    handle(ctx, req) {
      ctx.controlPlane.removeThingFromThingGroup(
        groupAndThing(parseBody(ThingGroupMembershipBody, req.body)),
      );
      return {};
    },
  },
  {
    operation: 'CreateThingGroup',
    method: 'POST',
    pattern: '/thing-groups/{thingGroupName}',
    handle(ctx, req) {
      refuseUnsupported(req.body, ['parentGroupName'], 'CreateThingGroup');
      refuseUnsupported(
        (req.body as { thingGroupProperties?: unknown } | null)?.thingGroupProperties,
        ['attributePayload'],
        'CreateThingGroup',
      );
      const b = parseBody(CreateThingGroupBody, req.body);
      const description = b.thingGroupProperties?.thingGroupDescription;
      const g = ctx.controlPlane.createThingGroup({
        thingGroupName: label(req, 'thingGroupName'),
        ...(description !== undefined && { description }),
      });
      return {
        thingGroupName: g.thingGroupName,
        thingGroupArn: g.thingGroupArn,
        thingGroupId: g.thingGroupId,
      };
    },
  },
  {
    operation: 'DescribeThingGroup',
    method: 'GET',
    pattern: '/thing-groups/{thingGroupName}',
    handle(ctx, req) {
      const g = ctx.controlPlane.describeThingGroup(label(req, 'thingGroupName'));
      return {
        thingGroupName: g.thingGroupName,
        thingGroupId: g.thingGroupId,
        thingGroupArn: g.thingGroupArn,
        version: g.version,
        thingGroupProperties: g.description !== undefined ? { thingGroupDescription: g.description } : {},
        thingGroupMetadata: { rootToParentThingGroups: [], creationDate: sec(g.createdAt) },
      };
    },
  },
  {
    operation: 'ListThingsInThingGroup',
    method: 'GET',
    pattern: '/thing-groups/{thingGroupName}/things',
    handle(ctx, req) {
      // Groups do not nest here, so `recursive` changes nothing; it is still validated.
      const q = parseQuery({ recursive: booleanQuery.optional(), ...pageQuery }, req.query);
      const result = ctx.controlPlane.listThingsInThingGroup(label(req, 'thingGroupName'), page(q));
      return { things: result.items, nextToken: result.nextToken };
    },
  },
  {
    operation: 'DescribeEndpoint',
    method: 'GET',
    pattern: '/endpoint',
    handle(ctx, req) {
      const q = parseQuery({ endpointType: queryString.optional() }, req.query);
      const type = q.endpointType ?? 'iot:Data';
      // AWS IoT developer guide, "Connecting devices": iot:Data-ATS (and legacy iot:Data) and iot:Jobs
      // are the MQTT/Jobs endpoints; iot:CredentialProvider is the credentials provider (reference sec. 5).
      let address: string | undefined;
      if (type === 'iot:Data' || type === 'iot:Data-ATS' || type === 'iot:Jobs')
        address = ctx.iotEndpointAddress;
      else if (type === 'iot:CredentialProvider') address = ctx.credentialsEndpointAddress;
      else {
        throw invalid(
          `endpointType: must be one of iot:Data, iot:Data-ATS, iot:Jobs, iot:CredentialProvider (got ${type})`,
        );
      }
      if (address === undefined) {
        throw new ControlPlaneError(
          'ResourceNotFoundException',
          `endpointType ${type}: no such endpoint is configured on this local control plane`,
        );
      }
      return { endpointAddress: address };
    },
  },
];
