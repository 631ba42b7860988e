import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CreateJobCommand, CreateThingGroupCommand, type IoTClient } from '@aws-sdk/client-iot';
import type { Browser, Page } from 'playwright-core';
import { iotClientFor } from '../../../src/operator/clients.ts';
import { artifactPath, launchChromium } from '../../e2e/dashboard/browser.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

/**
 * The dashboard with 10,000 devices in one job, in Chromium. The devices' progress goes through the real
 * path (broker → MQTT over WebSocket → dashboard server → event stream → page); the broker's own publish
 * stands in for 10,000 agents. The page must show every device while keeping only the rows on screen in
 * the DOM. Times are reported as diagnostics, never asserted.
 *
 * Then the same with 10,000 real executions (things, a thing group, CreateJob; ~30 s to set up on a
 * 2-core machine). Part of the heavy suite (`npm run test:heavy`, run by CI), not of `npm test`.
 */
const N = 10_000;
const SIZE = 1024 * 1024;
const name = (i: number) => `dev-${String(i).padStart(5, '0')}`;

let t: TestStack;
let browser: Browser;
let iot: IoTClient;

before(async () => {
  browser = await launchChromium();
  t = await startTestStack('ota-e2e-dashboard-scale', { things: [], dashboardPort: 0 });
  const ep = t.stack.endpoints;
  iot = iotClientFor({ kind: 'local', endpoints: ep });
});

after(async () => {
  await browser?.close();
  iot?.destroy();
  await t?.close();
});

/** Progress messages in the agent's format (docs/original.md plus the appended fields). */
async function publishWave(jobId: string, done: (i: number) => number, state: string): Promise<void> {
  for (let i = 0; i < N; i++) {
    const payload = JSON.stringify({
      camera_id: name(i),
      'Total size': SIZE,
      Downloading: done(i),
      Progress: `${((done(i) / SIZE) * 100).toFixed(2)} %`,
      jobId,
      state,
      bytesPerSecond: 250_000 + i,
      etaSeconds: Math.ceil((SIZE - done(i)) / (250_000 + i)),
    });
    await t.stack.broker.publish(`CarVi/test/firmware/${name(i)}`, payload, 0);
  }
}

async function domRows(page: Page): Promise<number> {
  return page.locator('.row').count();
}

test('10,000 devices in one job: every device counted, only the visible rows in the DOM', async (ctx) => {
  const group = await iot.send(new CreateThingGroupCommand({ thingGroupName: 'scale-fleet' }));
  await iot.send(
    new CreateJobCommand({
      jobId: 'scale-10k',
      targets: [group.thingGroupArn as string],
      targetSelection: 'CONTINUOUS',
      document: JSON.stringify({
        firmware: { version: '2', size: SIZE, region: 'us-west-2', url: 'https://s3.amazonaws.com/b/k' },
      }),
    }),
  );
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    await page.goto(`${t.stack.endpoints.dashboard?.url}#job=scale-10k`);
    await page.locator('#feed[data-state="connected"]').waitFor();

    let t0 = performance.now();
    await publishWave('scale-10k', (i) => (i * 97) % SIZE, 'DOWNLOADING');
    await page
      .locator('#counts button[data-status="ALL"]', { hasText: `All ${N}` })
      .waitFor({ timeout: 60_000 });
    ctx.diagnostic(
      `10,000 rows on the page ${(performance.now() - t0).toFixed(0)} ms after the first message`,
    );
    const rows = await domRows(page);
    assert.ok(rows > 10 && rows < 150, `${rows} row elements in the DOM for ${N} devices`);
    assert.equal(await page.locator('.row[data-thing="dev-00000"]').count(), 1);

    // Scrolling to the end shows the last device, still with a bounded DOM.
    await page.locator('#rows').evaluate((el) => {
      el.scrollTop = el.scrollHeight;
    });
    await page.locator(`.row[data-thing="${name(N - 1)}"]:not([hidden])`).waitFor();
    assert.ok((await domRows(page)) < 150);

    // A second wave completes every download; the fleet summary adds up all 10,000.
    t0 = performance.now();
    await publishWave('scale-10k', () => SIZE, 'DOWNLOADED');
    await page
      .locator('#fleet-progress small', { hasText: '9.77 GiB of 9.77 GiB' })
      .waitFor({ timeout: 60_000 });
    ctx.diagnostic(
      `10,000 row updates shown ${(performance.now() - t0).toFixed(0)} ms after the first message`,
    );
    await page.locator(`.row[data-thing="${name(N - 1)}"] .pct`, { hasText: '100 %' }).waitFor();

    // Filtering by name is one pass over the sorted list.
    await page.locator('#filter').fill('dev-0999');
    await page.locator('.row[data-thing="dev-09990"]:not([hidden])').waitFor();
    await page.screenshot({ path: artifactPath('dashboard-10k.png') });
  } finally {
    await page.close();
  }
});

test('10,000 real executions load as one snapshot', async (ctx) => {
  const cp = t.stack.jobs.controlPlane;
  const group = cp.createThingGroup({ thingGroupName: 'scale-real' });
  for (let i = 0; i < N; i++) {
    cp.createThing({ thingName: `real-${name(i)}` });
    cp.addThingToThingGroup({ thingGroupName: 'scale-real', thingName: `real-${name(i)}` });
  }
  await iot.send(
    new CreateJobCommand({
      jobId: 'scale-real',
      targets: [group.thingGroupArn],
      document: JSON.stringify({
        firmware: { version: '2', size: SIZE, region: 'us-west-2', url: 'https://s3.amazonaws.com/b/k' },
      }),
    }),
  );
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    const t0 = performance.now();
    await page.goto(`${t.stack.endpoints.dashboard?.url}#job=scale-real`);
    await page.locator('#counts button[data-status="QUEUED"]', { hasText: `QUEUED ${N}` }).waitFor({
      timeout: 120_000,
    });
    ctx.diagnostic(`10,000 executions loaded and shown in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok((await domRows(page)) < 150);
  } finally {
    await page.close();
  }
});
