import { AbortedError, errorMessage } from '../shared/errors.ts';
import type { Compensation, JobContext, Step, StepEnv, StepName } from './job-context.ts';
import { commitStep, healthStep, installStep, rebootStep } from './steps/device.ts';
import { checkVersion, printSections, resolveSourceStep, validateDocument } from './steps/document.ts';
import { downloadStep, verifyStep } from './steps/image.ts';
import { reportStep, startNextStep } from './steps/jobs.ts';
import { checkDevice, checkSignature } from './steps/trust.ts';

export type {
  JobContext,
  JobOutcome,
  JobSummary,
  Step,
  StepEnv,
  StepName,
  StepResult,
} from './job-context.ts';
export { newJobContext } from './job-context.ts';
export { commitStep, healthStep, installStep, rebootStep } from './steps/device.ts';
export { checkVersion, printSections, resolveSourceStep, validateDocument } from './steps/document.ts';
export { downloadStep, verifyStep } from './steps/image.ts';
export { reportStep, startNextStep } from './steps/jobs.ts';
export { checkDevice, checkSignature } from './steps/trust.ts';

/**
 * The OTA of one job as one array of small named steps (aedes-style): each is logged by name, reported
 * as an event and testable alone with a hand-built context. `start-next` takes the job; `report` runs
 * after the array whatever happened, with the error that stopped it. Two entry points into the same
 * array: a fresh job starts at `start-next` and runs through; a job found in the pending-commit record
 * after a restart jumps from `start-next` to `reboot` (its resumed half) and on to `health` and `commit`.
 * When a step fails, the compensations earlier steps registered run first (remove the image, roll back
 * the install), then `report`.
 */
export const OTA_STEPS: readonly Step[] = [
  startNextStep,
  validateDocument,
  printSections,
  checkVersion,
  checkDevice,
  checkSignature,
  resolveSourceStep,
  downloadStep,
  verifyStep,
  installStep,
  rebootStep,
  healthStep,
  commitStep,
];

export interface Pipeline {
  steps: readonly Step[];
  /** Runs last, with `ctx.error` set, whenever there is a job to report on. */
  final: Step;
}

export const OTA_PIPELINE: Pipeline = { steps: OTA_STEPS, final: reportStep };

export interface StepHooks {
  onStepStart?: (step: StepName, ctx: JobContext) => void;
  onStepEnd?: (step: StepName, ms: number, error: unknown, ctx: JobContext) => void;
}

async function timed(step: Step, ctx: JobContext, env: StepEnv, hooks: StepHooks) {
  const t0 = env.timers.now();
  hooks.onStepStart?.(step.name, ctx);
  env.logger.debug({ step: step.name }, 'step start');
  try {
    const r = await step.run(ctx, env);
    const ms = env.timers.now() - t0;
    hooks.onStepEnd?.(step.name, ms, undefined, ctx);
    env.logger.info({ step: step.name, ms }, 'step done');
    return r;
  } catch (err) {
    const ms = env.timers.now() - t0;
    hooks.onStepEnd?.(step.name, ms, err, ctx);
    env.logger.info({ step: step.name, ms, err: errorMessage(err) }, 'step failed');
    throw err;
  }
}

function indexOf(steps: readonly Step[], name: StepName): number {
  const i = steps.findIndex((s) => s.name === name);
  if (i < 0) throw new Error(`pipeline bug: no step ${name}`);
  return i;
}

/**
 * Runs the steps in order from `from` (default: the first). A step may jump ahead (`{goto}`) or end the
 * pipeline early (`{end}`); the first error stops it and is rethrown. A stop of the agent is honoured
 * between steps too: a step that finished as the stop came (an install command that exited 0 just as
 * SIGTERM arrived) is kept, and the next one (reboot, health, commit) does not start.
 */
export async function runSteps(
  steps: readonly Step[],
  ctx: JobContext,
  env: StepEnv,
  hooks: StepHooks = {},
  from?: StepName,
): Promise<void> {
  let i = from ? indexOf(steps, from) : 0;
  while (i < steps.length) {
    if (env.stopSignal.aborted) throw new AbortedError('agent stopped');
    const step = steps[i] as Step;
    const r = await timed(step, ctx, env, hooks);
    if (r && 'end' in r) {
      ctx.end = r.end;
      return;
    }
    i = r && 'goto' in r ? indexOf(steps, r.goto) : i + 1;
  }
}

/**
 * One job through the pipeline: the steps, then the final step (report) when start-next produced a job.
 * Rethrows an error that came before any job existed (start-next failed), so the caller backs off.
 */
export async function runPipeline(
  pipeline: Pipeline,
  ctx: JobContext,
  env: StepEnv,
  hooks: StepHooks = {},
): Promise<void> {
  try {
    await runSteps(pipeline.steps, ctx, env, hooks);
  } catch (err) {
    if (!ctx.execution) throw err;
    ctx.error = err;
  }
  if (!ctx.execution || ctx.end === 'idle') return;
  if (ctx.error !== undefined && !env.stopSignal.aborted) await compensate(ctx, env, hooks);
  await timed(pipeline.final, ctx, env, hooks);
}

/** Runs the registered compensations in reverse; a failing one is logged and noted in the reason. */
async function compensate(ctx: JobContext, env: StepEnv, hooks: StepHooks): Promise<void> {
  while (ctx.undo.length > 0) {
    const c = ctx.undo.pop() as Compensation;
    const step: Step = {
      name: c.step ?? 'report',
      run: async () => {
        await c.run(ctx.error);
        return undefined;
      },
    };
    try {
      if (c.step) await timed(step, ctx, env, hooks);
      else await c.run(ctx.error);
    } catch (err) {
      env.logger.error({ what: c.what, err: errorMessage(err) }, 'could not undo');
    }
  }
}
