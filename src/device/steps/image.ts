import { rm, stat } from 'node:fs/promises';
import { parseJobDocument, resolveSource } from '../document/job-document.ts';
import { downloadFirmware } from '../download/download.ts';
import { watchMaxRate } from '../download/rate-watch.ts';
import { TokenBucket } from '../download/token-bucket.ts';
import { DownloadError } from '../errors.ts';
import { ensureDir, FsError } from '../fs-safe.ts';
import { type JobContext, need, type Step, type StepEnv } from '../job-context.ts';
import type { DownloadSource } from '../source/sources.ts';
import { s3Opt } from './document.ts';
import { verifySignature } from './trust.ts';

/** The steps that bring the image onto the device and check it. */

export const downloadStep: Step = {
  name: 'download',
  async run(ctx, env) {
    const doc = need(ctx.document, 'document');
    const src = need(ctx.source, 'source');
    const dir = env.config.downloadDir;
    // Fail fast, before a byte is fetched: an unwritable download dir or state dir is named with its cause.
    try {
      await ensureDir(dir);
    } catch (err) {
      if (err instanceof FsError)
        throw new DownloadError('disk', `download dir: ${err.message}`, { cause: err });
      throw err;
    }
    await env.state.update((s) => ({
      ...s,
      inFlight: {
        jobId: ctx.jobId,
        fileName: src.fileName,
        version: doc.version,
        startedAt: new Date(env.timers.now()).toISOString(),
      },
    }));
    const cfg = env.config;
    // One bucket for every connection of this download; the config file may change its rate meanwhile.
    const bucket = new TokenBucket(cfg.maxRate, { timers: env.timers });
    const unwatch = cfg.maxRateFile ? watchMaxRate(cfg.maxRateFile, bucket, env.logger) : () => {};
    // The job's step timer rides on the statusDetails updates while bytes flow (progress/reporter.ts).
    env.progress.renewStepTimer(cfg.stepTimeoutMinutes);
    try {
      ctx.download = await downloadFirmware({
        source: env.openSource(src),
        dir,
        fileName: src.fileName,
        expectedSize: doc.size,
        ...(doc.sha256 ? { sha256: doc.sha256 } : {}),
        signal: env.signal,
        retryWindowMs: cfg.downloadRetryWindowMs,
        connections: cfg.connections,
        bucket,
        stallTimeoutMs: cfg.stallTimeoutMs,
        minFree: cfg.minFree,
        logger: env.logger,
        timers: env.timers,
        onStart: (onDisk) => {
          ctx.startedAt = env.timers.now(); // OTA_start_time: the original stamped it right before the download
          ctx.summary.downloadStartedAt = env.timers.now();
          env.progress.start(onDisk, doc.size);
        },
        onProgress: (done, total) => env.progress.update(done, total),
        refreshSource: () => refreshSource(ctx, env),
      });
    } finally {
      unwatch();
    }
    const path = ctx.download.path;
    ctx.undo.push({ what: `remove ${path}`, run: () => rm(path, { force: true }) });
    env.progress.finish(ctx.download.bytes);
  },
};

/**
 * A 403 on a presigned URL: `{jobId}/get` returns the document with fresh URLs (docs/protocol.md,
 * Presigned URL placeholders).
 */
async function refreshSource(ctx: JobContext, env: StepEnv): Promise<DownloadSource> {
  const src = need(ctx.source, 'source');
  const exec = await env.jobs.describe(ctx.jobId);
  if (!exec)
    throw new DownloadError('http', 'job execution no longer exists; cannot refresh the URL', {
      status: 403,
    });
  const fresh = resolveSource(parseJobDocument(exec.jobDocument), {
    downloadDir: env.config.downloadDir,
    ...s3Opt(env.config),
  });
  if (fresh.fileName !== src.fileName)
    throw new DownloadError('changed', 'refreshed document names another file');
  return env.openSource(fresh);
}

export const verifyStep: Step = {
  name: 'verify',
  async run(ctx, env) {
    const doc = need(ctx.document, 'document');
    const d = need(ctx.download, 'download');
    const st = await stat(d.path);
    if (st.size !== doc.size)
      throw new DownloadError('size', `file is ${st.size} bytes, firmware.size is ${doc.size}`);
    if (doc.sha256 && d.sha256 !== doc.sha256) {
      throw new DownloadError('checksum', `sha256 ${d.sha256} does not match firmware.sha256 ${doc.sha256}`);
    }
    // Over the digest of the bytes on disk: a failure removes the file (the download's compensation).
    verifySignature(ctx, env, d.sha256);
    return undefined;
  },
};
