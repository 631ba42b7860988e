/** Thing principals (AttachThingPrincipal, DetachThingPrincipal, ListThingPrincipals) and DeleteThing's cleanup. */
import { THING_NAME_PATTERN } from '../../shared/topics.ts';
import {
  certificateByArn,
  changed,
  getOrCreate,
  invalid,
  notFound,
  type SecurityContext,
} from './registry-context.ts';
import type { SecurityRegistry } from './types.ts';

type PrincipalOperations = Pick<
  SecurityRegistry,
  'attachThingPrincipal' | 'detachThingPrincipal' | 'listThingPrincipals' | 'onThingDeleted'
>;

export function principalOperations(ctx: SecurityContext): PrincipalOperations {
  const { store, principals, opts } = ctx;
  return {
    attachThingPrincipal(thingName, principal, type = 'NON_EXCLUSIVE_THING') {
      if (!THING_NAME_PATTERN.test(thingName))
        throw invalid(`thingName: must match ${THING_NAME_PATTERN.source}`);
      if (type !== 'EXCLUSIVE_THING' && type !== 'NON_EXCLUSIVE_THING') {
        throw invalid('thingPrincipalType: must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING');
      }
      if (!opts.thingExists(thingName)) throw notFound(`thing ${thingName} does not exist`);
      const c = certificateByArn(ctx, principal, 'principal');
      const things = getOrCreate(principals, c.certificateArn, () => new Map());
      const others = [...things.keys()].filter((t) => t !== thingName);
      if (type === 'EXCLUSIVE_THING' && others.length > 0) {
        throw invalid(
          `principal: attached to other things (${others.join(', ')}); an exclusive association needs none`,
        );
      }
      if ([...things].some(([t, ty]) => t !== thingName && ty === 'EXCLUSIVE_THING')) {
        throw invalid('principal: exclusively attached to another thing');
      }
      store.putThingPrincipal({ thingName, principal: c.certificateArn, type });
      things.set(thingName, type);
      changed(ctx);
    },

    detachThingPrincipal(thingName, principal) {
      if (!opts.thingExists(thingName)) throw notFound(`thing ${thingName} does not exist`);
      const c = certificateByArn(ctx, principal, 'principal');
      store.deleteThingPrincipal(thingName, c.certificateArn);
      principals.get(c.certificateArn)?.delete(thingName);
      changed(ctx);
    },

    listThingPrincipals(thingName) {
      if (!opts.thingExists(thingName)) throw notFound(`thing ${thingName} does not exist`);
      return [...principals]
        .filter(([, things]) => things.has(thingName))
        .map(([p]) => p)
        .sort();
    },

    onThingDeleted(thingName) {
      store.deleteThingPrincipals(thingName);
      for (const things of principals.values()) things.delete(thingName);
      changed(ctx);
    },
  };
}
