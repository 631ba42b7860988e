import { ValidationError } from '../../shared/errors.ts';
import type { AgentConfig } from '../config/agent-config.ts';
import { parseJobDocument, type ResolvedSource, resolveSource } from '../document/job-document.ts';
import { compareVersions } from '../document/version.ts';
import { JobRejectedError } from '../errors.ts';
import { need, type Step } from '../job-context.ts';
import { jobInfoSection, requiredInfoSection, versionSection } from '../progress/sections.ts';

/** The steps that decide whether a job is acceptable at all: each failure here is REJECTED. */

/** Errors that make a job REJECTED rather than FAILED: the job itself is unacceptable. */
export function reject(err: unknown): never {
  if (err instanceof ValidationError) throw new JobRejectedError(err.message, { cause: err });
  throw err;
}

export function s3Opt(c: AgentConfig): { s3Endpoint?: string } {
  return c.s3Endpoint ? { s3Endpoint: c.s3Endpoint } : {};
}

export const validateDocument: Step = {
  name: 'validate-document',
  async run(ctx) {
    const execution = need(ctx.execution, 'execution');
    try {
      ctx.document = parseJobDocument(execution.jobDocument);
    } catch (err) {
      reject(err);
    }
  },
};

export const printSections: Step = {
  name: 'print-sections',
  async run(ctx, env) {
    const execution = need(ctx.execution, 'execution');
    const doc = ctx.document;
    env.write(
      jobInfoSection({
        jobId: ctx.jobId,
        status: execution.status,
        ...(doc ? { size: doc.size } : {}),
        document: execution.jobDocument,
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
