import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { OtaError } from '../shared/errors.ts';

/**
 * The page's three files. `npm run build` bundles them into dist/web/dashboard (scripts/build-web.ts,
 * through {@link bundleDashboard}); a checkout that was never built (bin/ota.js then runs the sources
 * through tsx) bundles them in memory at start, with the same esbuild that tsx brings.
 */
export interface DashboardAssets {
  'index.html': string;
  'app.js': string;
  'app.css': string;
}

export const ASSET_NAMES = ['index.html', 'app.js', 'app.css'] as const;

/** web/dashboard, the page's sources (the same relative path from src/dashboard and dist/dashboard). */
export const WEB_SOURCE_DIR = fileURLToPath(new URL('../../web/dashboard/', import.meta.url));

/** Where the build puts the page: dist/web/dashboard (from dist/dashboard or from src/dashboard). */
function builtDirs(): string[] {
  return [
    fileURLToPath(new URL('../web/dashboard/', import.meta.url)),
    fileURLToPath(new URL('../../dist/web/dashboard/', import.meta.url)),
  ];
}

export async function bundleDashboard(sourceDir = WEB_SOURCE_DIR): Promise<DashboardAssets> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    throw new OtaError(
      'OTA_DASHBOARD_BUILD',
      'the dashboard page is not built and esbuild is not installed: run `npm run build`',
      { cause: err },
    );
  }
  const js = await esbuild.build({
    entryPoints: [`${sourceDir}main.ts`],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    platform: 'browser',
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const css = await esbuild.transform(await readFile(`${sourceDir}style.css`, 'utf8'), {
    loader: 'css',
    minify: true,
  });
  return {
    'index.html': await readFile(`${sourceDir}index.html`, 'utf8'),
    'app.js': js.outputFiles[0]?.text ?? '',
    'app.css': css.code,
  };
}

/** The built page if there is one, else a fresh in-memory bundle of the sources. */
export async function loadDashboardAssets(): Promise<DashboardAssets> {
  for (const dir of builtDirs()) {
    if (!ASSET_NAMES.every((n) => existsSync(`${dir}${n}`))) continue;
    const [html, js, css] = await Promise.all(ASSET_NAMES.map((n) => readFile(`${dir}${n}`, 'utf8')));
    return { 'index.html': html ?? '', 'app.js': js ?? '', 'app.css': css ?? '' };
  }
  return bundleDashboard();
}
