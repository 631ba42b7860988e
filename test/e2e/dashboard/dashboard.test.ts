import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CancelJobCommand, CreateJobCommand, DescribeThingCommand } from '@aws-sdk/client-iot';
import { S3Client } from '@aws-sdk/client-s3';
import type { Browser, Page } from 'playwright-core';
import { iotClientFor } from '../../../src/operator/clients.ts';
import { startPacedLink } from '../../../src/operator/paced-link.ts';
import { localS3ClientConfig } from '../../../src/shared/s3-client-config.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { agentConfig, createJob, firmwareDoc, putFirmware, runAgent, type World } from '../agent/helpers.ts';
import { artifactPath, launchChromium } from './browser.ts';

/**
 * The fleet dashboard in real Chromium, against a local stack that serves it (as `ota dev` does), with
 * the real device agent doing real OTAs. The page gets everything over its event stream; the test only
 * reads the DOM.
 */
let t: TestStack;
let w: World;
let browser: Browser;

before(async () => {
  browser = await launchChromium();
  t = await startTestStack('ota-e2e-dashboard', { things: [], dashboardPort: 0 });
  const ep = t.stack.endpoints;
  const iot = iotClientFor({ kind: 'local', endpoints: ep });
  const s3 = new S3Client(localS3ClientConfig(ep.s3.endpoint, ep.s3, ep.region));
  w = { dir: t.dir, stack: t.stack, iot, s3, bucket: ep.s3.bucket, close: async () => {} };
});

after(async () => {
  await browser?.close();
  w?.iot.destroy();
  w?.s3.destroy();
  await t?.close();
});

function dashboardUrl(jobId?: string): string {
  const url = t.stack.endpoints.dashboard?.url;
  assert.ok(url, 'endpoints.json has dashboard.url');
  return jobId ? `${url}#job=${jobId}` : url;
}

const row = (page: Page, thing: string) => page.locator(`.row[data-thing="${thing}"]:not([hidden])`);

/**
 * Records every (state, percent) the page shows for one device, from a MutationObserver in the page.
 * The script is a string: tsx's transform would add helpers to a function that the page does not have.
 */
async function recordRow(page: Page, thing: string): Promise<() => Promise<string[]>> {
  await page.evaluate(`(() => {
    const seen = [];
    window.__seen = seen;
    const sample = () => {
      const el = document.querySelector('.row[data-thing=${JSON.stringify(thing)}]:not([hidden])');
      if (!el) return;
      const s = el.querySelector('.c-state').textContent + '|' + el.querySelector('.pct').textContent;
      if (seen[seen.length - 1] !== s) seen.push(s);
    };
    sample();
    new MutationObserver(sample).observe(document.getElementById('rows'), {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
  })()`);
  return () => page.evaluate('window.__seen') as Promise<string[]>;
}

test('the page shows a device go from 0 % to SUCCEEDED during a real agent run, on a desktop and a phone', async () => {
  const thing = 'RaspberryPi_2';
  const size = 3 * 1024 * 1024;
  await t.stack.ensureThing(thing);
  await putFirmware(w, 'firmware/CV150-C3_0.6.6/cv150_ubifs.img', size);
  await createJob(w, thing, 'dash-ota-1', firmwareDoc(w, size));

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const phone = await browser.newPage({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  try {
    // The page opens on the most recent job, with the device queued at 0 %.
    await page.goto(dashboardUrl());
    await page.locator('#feed[data-state="connected"]').waitFor();
    assert.equal(await page.locator('#job-title').textContent(), 'dash-ota-1');
    await row(page, thing).locator('.c-state', { hasText: 'QUEUED' }).waitFor();
    assert.equal(await row(page, thing).locator('.pct').textContent(), '0.0 %');
    const seen = await recordRow(page, thing);
    await phone.goto(dashboardUrl('dash-ota-1'));
    await row(phone, thing).waitFor();

    // A slow link (1 MiB/s) keeps the download visible for about three seconds.
    const link = await startPacedLink(t.stack.endpoints.s3.endpoint, 1024 * 1024);
    try {
      const agent = runAgent(await agentConfig(w, thing, { once: true, s3Endpoint: link.endpoint }));
      await row(page, thing).locator('.c-state', { hasText: 'DOWNLOADING' }).waitFor({ timeout: 20_000 });
      await page.screenshot({ path: artifactPath('dashboard-desktop.png') });
      const summary = await agent.done;
      assert.equal(summary.jobs[0]?.status, 'SUCCEEDED');
    } finally {
      await link.close();
    }
    await row(page, thing).locator('.c-state', { hasText: 'SUCCEEDED' }).waitFor({ timeout: 20_000 });
    assert.equal(await row(page, thing).locator('.pct').textContent(), '100 %');

    const states = await seen();
    assert.equal(states[0], 'QUEUED|0.0 %', states.join(' → '));
    const midway = states.filter((s) => {
      const [state, pct] = s.split('|');
      const p = Number.parseFloat(pct ?? '');
      return state === 'DOWNLOADING' && p > 0 && p < 100;
    });
    assert.ok(midway.length >= 2, `intermediate progress shown: ${states.join(' → ')}`);
    assert.equal(states[states.length - 1], 'SUCCEEDED|100 %', states.join(' → '));
    // Bytes, rate and the age of the last message are shown too.
    assert.match((await row(page, thing).locator('.c-bytes').textContent()) ?? '', /^3\.0 \/ 3\.0 MiB$/);
    await page.locator('#fleet-progress', { hasText: '1 / 1 succeeded' }).waitFor();
    await page.locator('#ttf', { hasText: 'done' }).waitFor();
    await page.screenshot({ path: artifactPath('dashboard-desktop-done.png') });

    // The phone got the same live updates, and the layout fits its width (no sideways scrolling).
    await row(phone, thing).locator('.c-state', { hasText: 'SUCCEEDED' }).waitFor({ timeout: 20_000 });
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the phone layout is ${overflow}px wider than the screen`);
    assert.equal(await phone.locator('.grid-head').isVisible(), false);
    await phone.screenshot({ path: artifactPath('dashboard-phone.png') });
  } finally {
    await page.close();
    await phone.close();
  }
});

test('a cancelled job shows its reason, and a rejected execution shows the agent’s reason', async () => {
  const thing = 'RaspberryPi_3';
  await t.stack.ensureThing(thing);
  await createJob(w, thing, 'dash-cancel', firmwareDoc(w, 1024));
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(dashboardUrl('dash-cancel'));
    await row(page, thing).locator('.c-state', { hasText: 'QUEUED' }).waitFor();
    await w.iot.send(
      new CancelJobCommand({
        jobId: 'dash-cancel',
        reasonCode: 'BAD_IMAGE',
        comment: 'checksum mismatch on 3 units',
      }),
    );
    await page.locator('#job-status', { hasText: 'CANCELED' }).waitFor({ timeout: 20_000 });
    await page.locator('#job-reason', { hasText: 'BAD_IMAGE — checksum mismatch on 3 units' }).waitFor();
    await row(page, thing).locator('.c-state', { hasText: 'CANCELED' }).waitFor({ timeout: 20_000 });
    // No abort configuration: cancelled by the operator, not aborted.
    await page.locator('#abort', { hasText: 'canceled' }).waitFor();

    // The same version as installed: the agent rejects the job; the row shows statusDetails.reason.
    await createJob(w, thing, 'dash-reject', firmwareDoc(w, 1024, { version: '41811019' }));
    await page.goto(dashboardUrl('dash-reject'));
    await page.locator('#job-title', { hasText: 'dash-reject' }).waitFor();
    await row(page, thing).locator('.c-state', { hasText: 'QUEUED' }).waitFor();
    const agent = runAgent(await agentConfig(w, thing, { once: true }));
    const summary = await agent.done;
    assert.equal(summary.jobs[0]?.status, 'REJECTED');
    await row(page, thing).locator('.c-state', { hasText: 'REJECTED' }).waitFor({ timeout: 20_000 });
    const reason = (await row(page, thing).locator('.c-reason').textContent()) ?? '';
    assert.match(reason, /41811019/, `reason shown: ${reason}`);
    // The job list counts it.
    await page.locator('#job-list button[data-job="dash-cancel"]', { hasText: 'CANCELED' }).waitFor();
  } finally {
    await page.close();
  }
});

test('rollout pace and abort state: two failures abort the job, the queued device is cancelled', async () => {
  const things = ['dash-a1', 'dash-a2', 'dash-a3'];
  const targets: string[] = [];
  for (const thing of things) {
    await t.stack.ensureThing(thing);
    targets.push((await w.iot.send(new DescribeThingCommand({ thingName: thing }))).thingArn as string);
  }
  const key = 'firmware/abort_1.0/abort.img';
  await putFirmware(w, key, 64 * 1024);
  // A wrong sha256: every device that downloads it fails the job.
  const doc = firmwareDoc(w, 64 * 1024, { sha256: '0'.repeat(64) }, key);
  await w.iot.send(
    new CreateJobCommand({
      jobId: 'dash-abort',
      targets,
      document: JSON.stringify(doc),
      jobExecutionsRolloutConfig: { maximumPerMinute: 100 },
      abortConfig: {
        criteriaList: [
          { failureType: 'FAILED', action: 'CANCEL', thresholdPercentage: 50, minNumberOfExecutedThings: 2 },
        ],
      },
    }),
  );
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(dashboardUrl('dash-abort'));
    await page.locator('#pace', { hasText: '≤ 100/min' }).waitFor();
    await page.locator('#abort', { hasText: 'armed' }).waitFor();
    await page.locator('#abort small', { hasText: 'FAILED ≥ 50% after 2 things → CANCEL' }).waitFor();
    // The rollout is paced: 100/min is spread over 60 one-second slots, so dash-a1 is notified at once
    // and dash-a2 and dash-a3 one slot (a second) later. A device's `--once` agent finds its execution
    // only after that release, and "the queued device" is queued only then: wait for each row to show
    // QUEUED (the page learns it from the notification) instead of assuming the rollout got there.
    for (const thing of ['dash-a1', 'dash-a2']) {
      await row(page, thing).locator('.c-state', { hasText: 'QUEUED' }).waitFor();
      if (thing === 'dash-a2')
        await row(page, 'dash-a3').locator('.c-state', { hasText: 'QUEUED' }).waitFor();
      const summary = await runAgent(await agentConfig(w, thing, { once: true })).done;
      assert.equal(summary.jobs[0]?.status, 'FAILED');
    }
    await page.locator('#job-status', { hasText: 'CANCELED' }).waitFor({ timeout: 20_000 });
    await page.locator('#abort', { hasText: 'aborted' }).waitFor();
    await page.locator('#job-reason', { hasText: 'ABORT_CRITERIA_MET' }).waitFor();
    await row(page, 'dash-a3').locator('.c-state', { hasText: 'CANCELED' }).waitFor({ timeout: 20_000 });
    await row(page, 'dash-a1').locator('.c-state', { hasText: 'FAILED' }).waitFor();
    assert.match((await row(page, 'dash-a1').locator('.c-reason').textContent()) ?? '', /sha256/);
    await page.locator('#ttf', { hasText: 'done' }).waitFor();
    await page.screenshot({ path: artifactPath('dashboard-aborted.png') });
  } finally {
    await page.close();
  }
});
