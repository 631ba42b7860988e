/**
 * `npm run build` (after tsc): bundles the dashboard page (web/dashboard) into dist/web/dashboard, the
 * three files the dashboard server serves. Prints the sizes, so a growing bundle is noticed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ASSET_NAMES, bundleDashboard } from '../src/dashboard/assets.ts';

const out = fileURLToPath(new URL('../dist/web/dashboard/', import.meta.url));
const assets = await bundleDashboard();
mkdirSync(out, { recursive: true });
const sizes: string[] = [];
for (const name of ASSET_NAMES) {
  writeFileSync(`${out}${name}`, assets[name]);
  sizes.push(`${name} ${assets[name].length} B (${gzipSync(assets[name]).length} B gzip)`);
}
if (process.env.OTA_BUILD_VERBOSE) process.stdout.write(`dashboard: ${sizes.join(', ')}\n`);
