/** Role aliases for the credentials provider (CreateRoleAlias, DescribeRoleAlias, DeleteRoleAlias). */
import { invalid, notFound, refuse, type SecurityContext } from './registry-context.ts';
import type { RoleAliasRow } from './store.ts';
import type { SecurityRegistry } from './types.ts';

const ROLE_ALIAS = /^[\w=,@-]{1,128}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const DURATION = { min: 900, max: 43_200, default: 3600 };

type RoleAliasOperations = Pick<
  SecurityRegistry,
  'createRoleAlias' | 'describeRoleAlias' | 'deleteRoleAlias' | 'roleAlias'
>;

export function roleAliasOperations(ctx: SecurityContext): RoleAliasOperations {
  const { store, roleAliases } = ctx;
  return {
    createRoleAlias({ roleAlias, roleArn, credentialDurationSeconds = DURATION.default }) {
      if (!ROLE_ALIAS.test(roleAlias)) throw invalid(`roleAlias: must match ${ROLE_ALIAS.source}`);
      if (!ROLE_ARN.test(roleArn))
        throw invalid('roleArn: must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)');
      if (
        !Number.isInteger(credentialDurationSeconds) ||
        credentialDurationSeconds < DURATION.min ||
        credentialDurationSeconds > DURATION.max
      ) {
        throw invalid(`credentialDurationSeconds: must be an integer ${DURATION.min}-${DURATION.max}`);
      }
      if (roleAliases.has(roleAlias)) {
        throw refuse('ResourceAlreadyExistsException', `role alias ${roleAlias} already exists`);
      }
      const t = ctx.now();
      const row: RoleAliasRow = {
        roleAlias,
        roleAliasArn: `${ctx.arnPrefix}rolealias/${roleAlias}`,
        roleArn,
        credentialDurationSeconds,
        createdAt: t,
        lastModifiedAt: t,
      };
      store.putRoleAlias(row);
      roleAliases.set(roleAlias, row);
      return row;
    },

    describeRoleAlias(roleAlias) {
      const r = roleAliases.get(roleAlias);
      if (!r) throw notFound(`role alias ${roleAlias} does not exist`);
      return { ...r, owner: ctx.opts.accountId };
    },

    deleteRoleAlias(roleAlias) {
      if (!roleAliases.has(roleAlias)) throw notFound(`role alias ${roleAlias} does not exist`);
      store.deleteRoleAlias(roleAlias);
      roleAliases.delete(roleAlias);
    },

    roleAlias: (roleAlias) => roleAliases.get(roleAlias),
  };
}
