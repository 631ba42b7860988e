/**
 * The REST-JSON (restJson1) operations of AWS IoT's control plane that the local stack serves, one array
 * per area; the matcher below serves their union. Shapes and helpers: route-kit.ts.
 */
import type { Route } from './route-kit.ts';
import { createRouter, type RestMatch } from './router.ts';
import { JOB_ROUTES } from './routes-jobs.ts';
import { TEMPLATE_ROUTES } from './routes-templates.ts';
import { THING_ROUTES } from './routes-things.ts';

export type { ApiRequest, Route, RouteContext } from './route-kit.ts';

export const ROUTES: readonly Route[] = [...JOB_ROUTES, ...TEMPLATE_ROUTES, ...THING_ROUTES];

/** Literal segments win over labels (PUT /thing-groups/addThingToThingGroup is not a group name). */
const router = createRouter(ROUTES);

export type RouteMatch = RestMatch<Route>;

/** Finds the route for a method and a raw (percent-encoded) path; labels come back decoded. */
export function matchRoute(method: string, rawPath: string): RouteMatch {
  return router.match(method, rawPath);
}
