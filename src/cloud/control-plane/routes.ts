/**
 * The REST-JSON (restJson1) operations of AWS IoT's control plane that the local stack serves, one array
 * per area; the matcher below serves their union. Shapes and helpers: route-kit.ts.
 */
import type { Route } from './route-kit.ts';
import { JOB_ROUTES } from './routes-jobs.ts';
import { TEMPLATE_ROUTES } from './routes-templates.ts';
import { THING_ROUTES } from './routes-things.ts';

export type { ApiRequest, Route, RouteContext } from './route-kit.ts';

export const ROUTES: readonly Route[] = [...JOB_ROUTES, ...TEMPLATE_ROUTES, ...THING_ROUTES];

interface CompiledRoute {
  route: Route;
  regex: RegExp;
  labelNames: string[];
}

function compile(route: Route): CompiledRoute {
  const labelNames: string[] = [];
  const source = route.pattern
    .split('/')
    .map((seg) => {
      const m = /^\{(\w+)\}$/.exec(seg);
      if (m?.[1]) {
        labelNames.push(m[1]);
        return '([^/]+)';
      }
      return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { route, regex: new RegExp(`^${source}$`), labelNames };
}

/** Literal segments win over labels (PUT /thing-groups/addThingToThingGroup is not a group name). */
const COMPILED: readonly CompiledRoute[] = ROUTES.map(compile).sort(
  (a, b) => a.labelNames.length - b.labelNames.length,
);

export type RouteMatch =
  | { kind: 'match'; route: Route; labels: Record<string, string> }
  | { kind: 'badLabel'; label: string }
  | { kind: 'none' };

/** Finds the route for a method and a raw (percent-encoded) path; labels come back decoded. */
export function matchRoute(method: string, rawPath: string): RouteMatch {
  const path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
  for (const c of COMPILED) {
    if (c.route.method !== method) continue;
    const m = c.regex.exec(path);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (let i = 0; i < c.labelNames.length; i++) {
      const name = c.labelNames[i] ?? '';
      try {
        labels[name] = decodeURIComponent(m[i + 1] ?? '');
      } catch {
        return { kind: 'badLabel', label: name };
      }
    }
    return { kind: 'match', route: c.route, labels };
  }
  return { kind: 'none' };
}
