/**
 * @peculiar/x509 depends on tsyringe, which refuses to load unless a Reflect metadata polyfill
 * (`reflect-metadata`) is installed. That package is not a dependency of this project, so this module
 * installs the four functions tsyringe and tslib's `__metadata` use, and only when nothing else has
 * installed them already (a real `reflect-metadata` loaded first wins). It must be imported before
 * `@peculiar/x509`; ES modules evaluate sibling imports in order, so `import './reflect-shim.ts'` as the
 * first import of a module is enough.
 */
type MetadataKey = unknown;
type Target = object;

const store = new WeakMap<Target, Map<string | symbol | undefined, Map<MetadataKey, unknown>>>();

function table(target: Target, property: string | symbol | undefined, create: boolean) {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    byProp = new Map();
    store.set(target, byProp);
  }
  let entries = byProp.get(property);
  if (!entries) {
    if (!create) return undefined;
    entries = new Map();
    byProp.set(property, entries);
  }
  return entries;
}

function getOwnMetadata(key: MetadataKey, target: Target, property?: string | symbol): unknown {
  return table(target, property, false)?.get(key);
}

function getMetadata(key: MetadataKey, target: Target, property?: string | symbol): unknown {
  // Walks the prototype chain like reflect-metadata's OrdinaryGetMetadata.
  for (let t: Target | null = target; t; t = Object.getPrototypeOf(t) as Target | null) {
    const entries = table(t, property, false);
    if (entries?.has(key)) return entries.get(key);
  }
  return undefined;
}

function defineMetadata(key: MetadataKey, value: unknown, target: Target, property?: string | symbol): void {
  table(target, property, true)?.set(key, value);
}

function metadata(key: MetadataKey, value: unknown) {
  return (target: Target, property?: string | symbol): void => defineMetadata(key, value, target, property);
}

type ReflectWithMetadata = typeof Reflect & {
  getMetadata?: typeof getMetadata;
  getOwnMetadata?: typeof getOwnMetadata;
  defineMetadata?: typeof defineMetadata;
  metadata?: typeof metadata;
};

const R = Reflect as ReflectWithMetadata;
if (typeof R.getMetadata !== 'function') {
  R.getMetadata = getMetadata;
  R.getOwnMetadata = getOwnMetadata;
  R.defineMetadata = defineMetadata;
  R.metadata = metadata;
}
