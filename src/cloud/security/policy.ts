/**
 * AWS IoT Core policy documents: parsing, validation and evaluation (AWS IoT developer guide, "AWS IoT Core
 * policies", "policy actions", "action resources", "policy variables", "thing policy variables").
 *
 * - Statements of `Effect` Allow/Deny, `Action` and `Resource` (a string or a list); IAM's evaluation logic:
 *   an explicit Deny wins, then an Allow; nothing matching is an implicit deny.
 * - Wildcards as in IAM: `*` any run of characters, `?` one character, in actions and resources. MQTT's
 *   `+` and `#` are literal characters in a policy.
 * - Policy variables in resources and condition values: `${iot:ClientId}`,
 *   `${iot:Connection.Thing.ThingName}` (resolved only when the client id names a thing attached to the
 *   certificate), `${iot:Connection.Thing.IsAttached}`; and IAM's `${*}`, `${?}`, `${$}` for the literal
 *   characters. A substituted value is always literal: a client id with `*` in it is not a wildcard. A
 *   variable that does not resolve makes the resource or condition value match nothing.
 * - Conditions: StringEquals, StringNotEquals, StringLike, StringNotLike and Bool on `iot:ClientId`,
 *   `iot:Connection.Thing.ThingName` and `iot:Connection.Thing.IsAttached` (AND across operators and keys,
 *   OR across a key's values; a missing key fails a positive operator and satisfies a negated one).
 *
 * Anything else (NotAction, NotResource, Principal, other condition operators, keys or variables) is refused
 * when the policy is created, by name, rather than evaluated wrongly. The document is limited to 2,048
 * characters without whitespace, as CreatePolicy is on AWS.
 */

export const MAX_POLICY_CHARS = 2048;
const VERSIONS = new Set(['2012-10-17', '2008-10-17']);
const CONDITION_OPERATORS = new Set([
  'StringEquals',
  'StringNotEquals',
  'StringLike',
  'StringNotLike',
  'Bool',
]);
const CONTEXT_KEYS = {
  'iot:ClientId': 'clientId',
  'iot:Connection.Thing.ThingName': 'thingName',
  'iot:Connection.Thing.IsAttached': 'isAttached',
} as const;
type ContextKey = keyof typeof CONTEXT_KEYS;
const LITERAL_VARIABLES: Record<string, string> = { '*': '*', '?': '?', $: '$' };

/** The connection a decision is about. */
export interface EvaluationContext {
  clientId?: string;
  /** Set only when the client id names a thing attached to the principal. */
  thingName?: string;
}

/** A piece of a resource or value: literal text (with `*`/`?` wildcards) or a variable. */
type Part = { text: string } | { literal: string } | { variable: ContextKey };

interface Condition {
  operator: string;
  key: ContextKey;
  values: Part[][];
}

interface Statement {
  allow: boolean;
  actions: RegExp[];
  resources: Part[][];
  conditions: Condition[];
}

export interface ParsedPolicy {
  statements: Statement[];
}

export class MalformedPolicyError extends Error {
  override readonly name = 'MalformedPolicyError';
}

const fail = (message: string): never => {
  throw new MalformedPolicyError(message);
};

function globToRegExp(parts: Part[], flags = ''): RegExp {
  let src = '';
  for (const p of parts) {
    if ('literal' in p) src += escapeRegExp(p.literal);
    else if ('text' in p) {
      for (const ch of p.text) src += ch === '*' ? '[\\s\\S]*' : ch === '?' ? '[\\s\\S]' : escapeRegExp(ch);
    } else throw new Error('unbound variable');
  }
  return new RegExp(`^${src}$`, flags);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Splits `text` into literal text and `${...}` variables; refuses unknown variables. */
function parseTemplate(text: string, where: string): Part[] {
  const parts: Part[] = [];
  let rest = text;
  while (rest.length > 0) {
    const start = rest.indexOf('${');
    if (start === -1) {
      parts.push({ text: rest });
      break;
    }
    if (start > 0) parts.push({ text: rest.slice(0, start) });
    const end = rest.indexOf('}', start);
    if (end === -1) fail(`${where}: unterminated policy variable in ${JSON.stringify(text)}`);
    const name = rest.slice(start + 2, end);
    const literal = LITERAL_VARIABLES[name];
    if (literal !== undefined) parts.push({ literal });
    else if (Object.hasOwn(CONTEXT_KEYS, name)) parts.push({ variable: name as ContextKey });
    else fail(`${where}: policy variable \${${name}} is not supported by the local stack`);
    rest = rest.slice(end + 1);
  }
  return parts;
}

function stringList(value: unknown, where: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string' && v !== '')) {
    return fail(`${where}: expected a non-empty string or list of strings`);
  }
  return list as string[];
}

function parseConditions(value: unknown, where: string): Condition[] {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(`${where}: expected an object of condition operators`);
  }
  const out: Condition[] = [];
  for (const [operator, block] of Object.entries(value)) {
    if (!CONDITION_OPERATORS.has(operator)) {
      fail(`${where}.${operator}: condition operator not supported by the local stack`);
    }
    if (typeof block !== 'object' || block === null || Array.isArray(block)) {
      fail(`${where}.${operator}: expected an object of condition keys`);
    }
    for (const [key, raw] of Object.entries(block as object)) {
      if (!Object.hasOwn(CONTEXT_KEYS, key)) {
        fail(`${where}.${operator}.${key}: condition key not supported by the local stack`);
      }
      const values = stringList(raw, `${where}.${operator}.${key}`).map((v) =>
        parseTemplate(v, `${where}.${operator}.${key}`),
      );
      out.push({ operator, key: key as ContextKey, values });
    }
  }
  return out;
}

const UNSUPPORTED_STATEMENT_KEYS = ['NotAction', 'NotResource', 'Principal', 'NotPrincipal'];

function parseStatement(raw: unknown, where: string): Statement {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return fail(`${where}: expected an object`);
  const s = raw as Record<string, unknown>;
  for (const key of UNSUPPORTED_STATEMENT_KEYS) {
    if (key in s) fail(`${where}.${key}: not supported by the local stack`);
  }
  for (const key of Object.keys(s)) {
    if (!['Sid', 'Effect', 'Action', 'Resource', 'Condition'].includes(key))
      fail(`${where}.${key}: unknown element`);
  }
  if (s.Effect !== 'Allow' && s.Effect !== 'Deny') fail(`${where}.Effect: must be Allow or Deny`);
  const actions = stringList(s.Action, `${where}.Action`).map((a) => {
    if (a !== '*' && !/^iot:[A-Za-z*?]+$/.test(a))
      fail(`${where}.Action: ${JSON.stringify(a)} is not an iot: action`);
    // Action names are case-insensitive (IAM).
    return globToRegExp([{ text: a }], 'i');
  });
  const resources = stringList(s.Resource, `${where}.Resource`).map((r) =>
    parseTemplate(r, `${where}.Resource`),
  );
  return {
    allow: s.Effect === 'Allow',
    actions,
    resources,
    conditions: parseConditions(s.Condition, `${where}.Condition`),
  };
}

/** Parses and validates a policy document; throws MalformedPolicyError naming the element at fault. */
export function parsePolicy(document: string): ParsedPolicy {
  if (document.replace(/\s/g, '').length > MAX_POLICY_CHARS) {
    fail(`policyDocument: longer than ${MAX_POLICY_CHARS} characters (whitespace excluded)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(document);
  } catch (err) {
    return fail(`policyDocument: not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return fail('policyDocument: expected a JSON object');
  const doc = raw as Record<string, unknown>;
  if (doc.Version !== undefined && !VERSIONS.has(String(doc.Version))) {
    fail(`Version: must be 2012-10-17 or 2008-10-17`);
  }
  const list = Array.isArray(doc.Statement)
    ? doc.Statement
    : doc.Statement === undefined
      ? []
      : [doc.Statement];
  if (list.length === 0) fail('Statement: at least one statement is required');
  return { statements: list.map((s, i) => parseStatement(s, `Statement[${i}]`)) };
}

type Values = { clientId?: string; thingName?: string; isAttached: string };

function bind(parts: Part[], values: Values): Part[] | undefined {
  const out: Part[] = [];
  for (const p of parts) {
    if (!('variable' in p)) {
      out.push(p);
      continue;
    }
    const v = values[CONTEXT_KEYS[p.variable]];
    if (v === undefined) return undefined;
    out.push({ literal: v });
  }
  return out;
}

function conditionHolds(c: Condition, values: Values): boolean {
  const actual = values[CONTEXT_KEYS[c.key]];
  const negated = c.operator === 'StringNotEquals' || c.operator === 'StringNotLike';
  if (actual === undefined) return negated;
  const like = c.operator === 'StringLike' || c.operator === 'StringNotLike';
  const any = c.values.some((template) => {
    const bound = bind(template, values);
    if (!bound) return false;
    if (like) return globToRegExp(bound).test(actual);
    const text = bound.map((p) => ('literal' in p ? p.literal : 'text' in p ? p.text : '')).join('');
    return c.operator === 'Bool' ? text.toLowerCase() === actual : text === actual;
  });
  return negated ? !any : any;
}

/**
 * The policies bound to one connection's context: conditions decided and variables substituted once, so a
 * decision per message is a few regular-expression tests.
 */
export interface BoundPolicies {
  /** `action` like `iot:Publish`; `resourceArn` the full ARN. */
  isAllowed(action: string, resourceArn: string): boolean;
}

export function bindPolicies(policies: ParsedPolicy[], ctx: EvaluationContext): BoundPolicies {
  const values: Values = {
    ...(ctx.clientId !== undefined ? { clientId: ctx.clientId } : {}),
    ...(ctx.thingName !== undefined ? { thingName: ctx.thingName } : {}),
    isAttached: ctx.thingName !== undefined ? 'true' : 'false',
  };
  const live: { allow: boolean; actions: RegExp[]; resources: RegExp[] }[] = [];
  for (const p of policies) {
    for (const s of p.statements) {
      if (!s.conditions.every((c) => conditionHolds(c, values))) continue;
      const resources = s.resources
        .map((r) => bind(r, values))
        .filter((r): r is Part[] => r !== undefined)
        .map((r) => globToRegExp(r));
      if (resources.length > 0) live.push({ allow: s.allow, actions: s.actions, resources });
    }
  }
  return {
    isAllowed(action, resourceArn) {
      let allowed = false;
      for (const s of live) {
        if (!s.actions.some((a) => a.test(action)) || !s.resources.some((r) => r.test(resourceArn))) continue;
        if (!s.allow) return false;
        allowed = true;
      }
      return allowed;
    },
  };
}
