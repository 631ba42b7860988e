import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

/**
 * Headless Debian Chromium for the dashboard tests, driven by playwright-core (no browser download).
 * A missing Chromium fails the test with one line saying how to install it; it never skips.
 */
export const CHROMIUM_PATH = process.env.OTA_CHROMIUM ?? '/usr/bin/chromium';

/** Screenshots kept by the tests (gitignored; see README "Dashboard"). */
export const ARTIFACTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../test-artifacts');

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM_PATH}: install it with \`apt-get install -y chromium\` (or set OTA_CHROMIUM to its path)`,
    );
  }
  // Playwright gives each launch a fresh temporary profile (its own --user-data-dir).
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}
