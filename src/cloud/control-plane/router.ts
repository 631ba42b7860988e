/**
 * A restJson1 route table: `METHOD /literal/{label}` patterns from the @aws-sdk/client-iot operation
 * schemas, matched against the raw (percent-encoded) path; labels come back decoded. Literal segments win
 * over labels. The input helpers every route uses are in route-kit.ts.
 */

export interface RestRequest {
  /** Path labels, percent-decoded. */
  labels: Record<string, string>;
  query: Record<string, string | string[]>;
  /** The parsed JSON body ({} when the body is empty). */
  body: unknown;
  /** Lower-case header names (AttachThingPrincipal carries its principal in `x-amzn-principal`). */
  headers: Record<string, string | string[] | undefined>;
}

export interface RestRoute<Ctx> {
  operation: string;
  method: string;
  pattern: string;
  handle(ctx: Ctx, req: RestRequest): unknown;
}

export type RestMatch<R> =
  | { kind: 'match'; route: R; labels: Record<string, string> }
  | { kind: 'badLabel'; label: string }
  | { kind: 'none' };

export interface Router<R> {
  match(method: string, rawPath: string): RestMatch<R>;
}

/** Any route table: the Jobs routes (routes.ts) and the provisioning routes share this matcher. */
export function createRouter<R extends { method: string; pattern: string }>(routes: readonly R[]): Router<R> {
  const compiled = routes
    .map((route) => {
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
    })
    .sort((a, b) => a.labelNames.length - b.labelNames.length);

  return {
    match(method, rawPath) {
      const path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
      for (const c of compiled) {
        if (c.route.method !== method) continue;
        const m = c.regex.exec(path);
        if (!m) continue;
        const labels: Record<string, string> = {};
        for (const [i, name] of c.labelNames.entries()) {
          try {
            labels[name] = decodeURIComponent(m[i + 1] ?? '');
          } catch {
            return { kind: 'badLabel', label: name };
          }
        }
        return { kind: 'match', route: c.route, labels };
      }
      return { kind: 'none' };
    },
  };
}
