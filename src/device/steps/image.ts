import { stat } from 'node:fs/promises';
import { downloadFirmware } from '../download.ts';
import { DownloadError } from '../errors.ts';
import { need, type Step } from '../job-context.ts';
import { parseJobDocument, resolveSource } from '../job-document.ts';
import { s3Opt } from './document.ts';

/** The steps that bring the image onto the device and check it. */

export const downloadStep: Step = {
  name: 'download',
  async run(ctx, env) {
    const doc = need(ctx.document, 'document');
    const src = need(ctx.source, 'source');
    let first = true;
    ctx.download = await downloadFirmware({
      source: env.openSource(src),
      dir: env.config.downloadDir,
      fileName: src.fileName,
      expectedSize: doc.size,
      ...(doc.sha256 ? { sha256: doc.sha256 } : {}),
      signal: env.signal,
      retries: env.config.downloadRetries,
      logger: env.logger,
      timers: env.timers,
      onRequest: (offset) => {
        if (!first) return;
        first = false;
        ctx.startedAt = env.timers.now(); // OTA_start_time: the original stamped it right before the download
        ctx.summary.downloadStartedAt = Date.now();
        void env.state
          .update((s) => ({
            ...s,
            currentVersion: env.state.currentVersion,
            inFlight: {
              jobId: ctx.jobId,
              fileName: src.fileName,
              version: doc.version,
              startedAt: new Date().toISOString(),
            },
          }))
          .catch(() => {});
        env.progress.start(offset, doc.size);
      },
      onProgress: (done, total) => env.progress.update(done, total),
      refreshSource: async () => {
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
      },
    });
    env.progress.finish(ctx.download.bytes);
  },
};

export const verifyStep: Step = {
  name: 'verify',
  async run(ctx) {
    const doc = need(ctx.document, 'document');
    const d = need(ctx.download, 'download');
    const st = await stat(d.path);
    if (st.size !== doc.size)
      throw new DownloadError('size', `file is ${st.size} bytes, firmware.size is ${doc.size}`);
    if (doc.sha256 && d.sha256 !== doc.sha256) {
      throw new DownloadError('checksum', `sha256 ${d.sha256} does not match firmware.sha256 ${doc.sha256}`);
    }
  },
};

export const installStep: Step = {
  name: 'install',
  async run(ctx, env) {
    const d = need(ctx.download, 'download');
    await env.install?.({ ...ctx, path: d.path });
  },
};
