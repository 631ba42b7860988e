import { stat } from 'node:fs/promises';
import { ValidationError } from '../shared/errors.ts';
import { type Logger, silentLogger } from '../shared/log.ts';
import type { AgentConfig } from './config.ts';
import { type DownloadResult, type DownloadSource, downloadFirmware } from './download.ts';
import { DownloadError, JobRejectedError } from './errors.ts';
import {
  type FirmwareDocument,
  parseJobDocument,
  type ResolvedSource,
  resolveSource,
} from './job-document.ts';
import type { JobExecution } from './jobs-client.ts';
import { jobInfoSection, requiredInfoSection, versionSection } from './sections.ts';
import { compareVersions } from './version.ts';

/**
 * The OTA of one job as an array of small named steps (aedes-style): each is logged by name, reported as
 * an event, and testable alone with a hand-built context. `start-next` (before) and `report` (after, with
 * the outcome) are run by the agent around this array.
 */
export type StepName =
  | 'start-next'
  | 'validate-document'
  | 'print-sections'
  | 'check-version'
  | 'resolve-source'
  | 'download'
  | 'verify'
  | 'install'
  | 'report';

export interface JobContext {
  execution: JobExecution;
  jobId: string;
  currentVersion: string;
  /** Epoch ms the OTA started (OTA_start_time). */
  startedAt: number;
  document?: FirmwareDocument;
  source?: ResolvedSource;
  download?: DownloadResult;
}

/** What steps need from the agent. Everything is injected: no globals, so many agents share a process. */
export interface StepEnv {
  config: AgentConfig;
  logger: Logger;
  write: (text: string) => void;
  signal: AbortSignal;
  /** Builds the S3 / HTTP source of a resolved location. */
  openSource: (src: ResolvedSource) => DownloadSource;
  /** Fetches the execution again (`{jobId}/get`) for a fresh presigned URL (reference section 4). */
  describe: (jobId: string) => Promise<JobExecution | undefined>;
  onDownloadStart?: (ctx: JobContext, offset: number) => void;
  onProgress: (ctx: JobContext, done: number, total: number) => void;
  /** After the atomic rename: the final "100.0 %" message goes out here. */
  onDownloadEnd?: (ctx: JobContext, result: DownloadResult) => void;
  /** A later install/rollback step plugs in here; the default does nothing. */
  install?: (ctx: JobContext & { path: string }) => Promise<void>;
}

export interface Step {
  name: StepName;
  run(ctx: JobContext, env: StepEnv): Promise<void>;
}

/** Errors that make a job REJECTED rather than FAILED: the job itself is unacceptable. */
function reject(err: unknown): never {
  if (err instanceof ValidationError) throw new JobRejectedError(err.message, { cause: err });
  throw err;
}

export const validateDocument: Step = {
  name: 'validate-document',
  async run(ctx) {
    try {
      ctx.document = parseJobDocument(ctx.execution.jobDocument);
    } catch (err) {
      reject(err);
    }
  },
};

export const printSections: Step = {
  name: 'print-sections',
  async run(ctx, env) {
    const doc = ctx.document;
    env.write(
      jobInfoSection({
        jobId: ctx.jobId,
        status: ctx.execution.status,
        ...(doc ? { size: doc.size } : {}),
        document: ctx.execution.jobDocument,
      }),
    );
    if (!doc) return;
    // Tolerant preview: resolve-source does the real (rejecting) check.
    let preview: ResolvedSource | { url: string };
    try {
      preview = resolveSource(doc, { downloadDir: env.config.downloadDir, ...s3Opt(env.config) });
    } catch {
      preview = { url: doc.url };
    }
    env.write(requiredInfoSection(preview, env.config.downloadDir));
    env.write(versionSection(doc.version, ctx.currentVersion));
  },
};

function s3Opt(c: AgentConfig): { s3Endpoint?: string } {
  return c.s3Endpoint ? { s3Endpoint: c.s3Endpoint } : {};
}

export const checkVersion: Step = {
  name: 'check-version',
  async run(ctx) {
    const doc = need(ctx.document, 'document');
    let cmp: number;
    try {
      cmp = compareVersions(doc.version, ctx.currentVersion);
    } catch (err) {
      reject(err);
    }
    if (cmp <= 0) {
      throw new JobRejectedError(
        `firmware.version: ${doc.version} is not newer than the current version ${ctx.currentVersion}`,
      );
    }
  },
};

export const resolveSourceStep: Step = {
  name: 'resolve-source',
  async run(ctx, env) {
    const doc = need(ctx.document, 'document');
    try {
      ctx.source = resolveSource(doc, { downloadDir: env.config.downloadDir, ...s3Opt(env.config) });
    } catch (err) {
      reject(err);
    }
  },
};

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
      onRequest: (offset) => {
        if (first) env.onDownloadStart?.(ctx, offset);
        first = false;
      },
      onProgress: (done, total) => env.onProgress(ctx, done, total),
      refreshSource: async () => {
        const exec = await env.describe(ctx.jobId);
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
    env.onDownloadEnd?.(ctx, ctx.download);
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

/** The steps between start-next and report, in order. */
export const OTA_STEPS: readonly Step[] = [
  validateDocument,
  printSections,
  checkVersion,
  resolveSourceStep,
  downloadStep,
  verifyStep,
  installStep,
];

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`pipeline bug: ${what} not set by an earlier step`);
  return v;
}

export interface StepHooks {
  onStepStart?: (step: StepName) => void;
  onStepEnd?: (step: StepName, ms: number, error?: unknown) => void;
}

/** Runs the steps in order; the first error stops the pipeline and is rethrown for `report`. */
export async function runSteps(
  steps: readonly Step[],
  ctx: JobContext,
  env: StepEnv,
  hooks: StepHooks = {},
): Promise<void> {
  const log = env.logger ?? silentLogger;
  for (const step of steps) {
    const t0 = Date.now();
    hooks.onStepStart?.(step.name);
    log.debug({ step: step.name }, 'step start');
    try {
      await step.run(ctx, env);
    } catch (err) {
      const ms = Date.now() - t0;
      hooks.onStepEnd?.(step.name, ms, err);
      log.info({ step: step.name, ms, err: (err as Error).message }, 'step failed');
      throw err;
    }
    const ms = Date.now() - t0;
    hooks.onStepEnd?.(step.name, ms);
    log.info({ step: step.name, ms }, 'step done');
  }
}
