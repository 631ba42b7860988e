// Part of `npm run build`, after tsc: bundles the compiled CLI (dist/cli/main.js, the same entry) with
// esbuild into dist/bundle/ — ESM, one chunk per lazily loaded command — for `ota agent`, which
// bin/ota.js starts from here when the bundle is at least as new as dist/cli/main.js.
//
// Why (docs/benchmarks.md, "Footprint and start-up"): the agent's dependencies are ~300 small modules
// (zod alone is 99); Node's ESM loader resolves, reads and compiles each one. In one bundle start-up
// costs ~0.1 s less CPU and ~3 MiB less peak RSS on a device that has neither to spare.
//
// Only the agent's own dependencies are bundled (mqtt, zod, pino, commander and what they import);
// every other package stays an external import resolved from node_modules as usual (the AWS SDK, which
// the agent loads only against AWS, the broker, SQLite, s3rver, ...). Names are kept, so stack traces
// and error names read as in the sources. Without esbuild (it comes with tsx) the step is skipped and
// bin/ota.js runs dist/cli/main.js.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist/bundle');
const BUNDLED = new Set(['mqtt', 'zod', 'pino', 'commander']);

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stderr.write('bundle-cli: esbuild not installed; `ota agent` will run dist/cli/main.js\n');
  process.exit(0);
}

const packageName = (spec) =>
  spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];

rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
  entryPoints: [join(root, 'dist/cli/main.js')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  keepNames: true,
  logLevel: 'warning',
  // CommonJS dependencies (mqtt, pino) call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __otaRequire } from 'node:module'; const require = __otaRequire(import.meta.url);",
  },
  plugins: [
    {
      name: 'agent-dependencies-only',
      setup(build) {
        // zod's classic API re-exports every locale's error messages as `z.locales` (about 270 KB of the
        // bundle's 1.1 MB, all compiled at start-up); the project never uses them: zod sets English
        // itself from its own en.js, which stays.
        build.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
          args.importer.includes(`${'/'}node_modules${'/'}zod${'/'}`)
            ? { path: 'zod-locales', namespace: 'ota-empty' }
            : undefined,
        );
        build.onLoad({ filter: /.*/, namespace: 'ota-empty' }, () => ({ contents: 'export {};' }));
        build.onResolve({ filter: /^[^./]/ }, (args) => {
          if (args.path.startsWith('node:')) return { external: true };
          const fromPackage = args.importer.includes(`${'/'}node_modules${'/'}`);
          if (fromPackage || BUNDLED.has(packageName(args.path))) return undefined; // bundle it
          return { external: true };
        });
      },
    },
  ],
});
