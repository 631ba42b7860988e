import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { OtaError } from '../../shared/errors.ts';
import { ensureDir, FsError, fsErrorMessage, fsyncDir } from '../fs-safe.ts';

/**
 * What survives a reboot, in `<stateDir>/state.json`:
 * - `currentVersion`: the firmware now installed (the original hard-coded 41811019);
 * - `pending`: an installed image waiting for its self-test and commit (PendingCommit below);
 * - `inFlight`: the job being downloaded. With the `.part` file and its sidecar (`<file>.part.json`:
 *   object identity, size, ETag/Last-Modified) it lets a restarted agent resume with Range: the Jobs
 *   service hands the IN_PROGRESS execution back first on start-next (docs/protocol.md, Requests and
 *   replies), the agent resolves the same file name, and downloadFirmware resumes from the bytes on disk.
 */
export interface AgentState {
  currentVersion?: string;
  updatedAt?: string;
  lastJob?: { jobId: string; status: string; version?: string; at: string };
  inFlight?: { jobId: string; fileName: string; version: string; startedAt: string };
  /** An installed image not yet committed: the job resumes at the self-test after a (re)start. */
  pending?: PendingCommit;
  /** A job's terminal status not yet accepted by the service: re-sent until it is (outbox.ts). */
  report?: OutboxReport;
}

/** Where an install stands; each phase resumes to one truthful end (docs/agent.md, "Commit protocol"). */
export type PendingPhase = 'installed' | 'committing' | 'rolling-back';

/** A terminal status the agent decided and recorded before sending it. */
export interface OutboxReport {
  jobId: string;
  executionNumber?: number;
  status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  statusDetails: Record<string, string>;
}

/**
 * The pending-commit record, written right after a successful install (before the reboot): with it, the
 * agent that starts after the reboot knows which job to finish, what it installed, and how many times it
 * has started since without a commit (the boot-loop guard, `--max-boot-attempts`).
 */
export interface PendingCommit {
  jobId: string;
  executionNumber?: number;
  fromVersion: string;
  toVersion: string;
  /** The installed image file and what it is. */
  file: string;
  fileName: string;
  sha256: string;
  bytes: number;
  /** Download seconds, for the SUCCEEDED statusDetails after the restart. */
  downloadSeconds: number;
  /** Self-tests started since the install without a commit: counted on disk before each one starts. */
  bootAttempts: number;
  installedAt: string;
  /** Absent: `installed`. */
  phase?: PendingPhase;
  /** With `rolling-back`: the failure the rollback answers, for the reason after a restart. */
  rollbackReason?: string;
}

export const STATE_FILE = 'state.json';

/** The agent's state could not be written: the job must fail rather than act on a state it cannot keep. */
export class StateError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_STATE_WRITE', message, options);
  }
}

/** state.json cannot be read or says something impossible: the agent stops rather than guess. */
export class StateCorruptError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_STATE_CORRUPT', message, options);
  }
}

const text = z.string().max(1024);
const count = z.number().int().nonnegative();
/**
 * What a state.json may hold. Unknown keys are kept (a newer agent's, read by an older one after a
 * rollback), but every known key must have its type: a negative `bootAttempts` would disable the
 * boot-loop guard, and a reset to `{}` would undo anti-downgrade.
 */
const StateSchema = z.looseObject({
  currentVersion: text.min(1).optional(),
  updatedAt: text.optional(),
  lastJob: z.looseObject({ jobId: text, status: text, version: text.optional(), at: text }).optional(),
  inFlight: z.looseObject({ jobId: text, fileName: text.min(1), version: text, startedAt: text }).optional(),
  pending: z
    .looseObject({
      jobId: text,
      executionNumber: count.optional(),
      fromVersion: text,
      toVersion: text.min(1),
      file: z.string().min(1),
      fileName: text,
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
      bytes: count,
      downloadSeconds: z.number().nonnegative(),
      bootAttempts: count,
      installedAt: text,
      phase: z.enum(['installed', 'committing', 'rolling-back']).optional(),
      rollbackReason: text.optional(),
    })
    .optional(),
  report: z
    .looseObject({
      jobId: text.min(1),
      executionNumber: count.optional(),
      status: z.enum(['SUCCEEDED', 'FAILED', 'REJECTED']),
      statusDetails: z.record(z.string().max(1024), z.string().max(1024)),
    })
    .optional(),
});

/**
 * Reads `<stateDir>/state.json`. A missing file is a device that has not taken an update yet (`{}`);
 * an unreadable, unparsable or invalid one throws StateCorruptError naming the file and the field: a
 * silent reset would forget the installed version (and with it anti-downgrade) or an install waiting
 * for its commit.
 */
export async function readState(stateDir: string): Promise<AgentState> {
  const file = join(stateDir, STATE_FILE);
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new StateCorruptError(fsErrorMessage(err, 'cannot read', file), { cause: err });
  }
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new StateCorruptError(`${file} is not JSON (${(err as Error).message}); fix or remove it`, {
      cause: err,
    });
  }
  const r = StateSchema.safeParse(v);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.length ? issue.path.join('.') : '(the whole file)';
    throw new StateCorruptError(`${file}: ${field}: ${issue?.message ?? 'invalid'}; fix or remove it`);
  }
  return r.data as AgentState;
}

let tmpSeq = 0;

/**
 * Atomic replace: write a temp file, fsync it, rename over state.json, fsync the directory. A failure
 * removes the temp file (none piles up on a full disk) and throws StateError naming the path and cause.
 */
export async function writeState(stateDir: string, state: AgentState): Promise<void> {
  const file = join(stateDir, STATE_FILE);
  const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`;
  try {
    await ensureDir(stateDir);
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    const msg = err instanceof FsError ? err.message : fsErrorMessage(err, 'cannot write', file);
    throw new StateError(`the agent state could not be written: ${msg}`, { cause: err });
  }
  await fsyncDir(stateDir);
}

/** Temp files of writes that died with their process (a crash between open and rename). */
async function sweepTemps(stateDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch {
    return;
  }
  const stale = names.filter((n) => n.startsWith(`${STATE_FILE}.`) && n.endsWith('.tmp'));
  await Promise.all(stale.map((n) => rm(join(stateDir, n), { force: true }).catch(() => {})));
}

/**
 * The agent's state, in memory and on disk, always in that order of truth: a change is written first and
 * applied in memory only once it is on disk, so the agent never acts on a version it could not persist.
 * Writes are serialised (no two renames race).
 */
export class StateStore {
  private state: AgentState = {};
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    /** The installed version when state.json has none yet (`--current-version`). */
    private readonly initialVersion = '0',
  ) {}

  get current(): Readonly<AgentState> {
    return this.state;
  }

  get currentVersion(): string {
    return this.state.currentVersion ?? this.initialVersion;
  }

  /** Reads state.json (a missing one is an empty state; a corrupt one throws) and removes stale temp files. */
  async load(): Promise<Readonly<AgentState>> {
    await sweepTemps(this.dir);
    this.state = await readState(this.dir);
    return this.state;
  }

  /** Writes `change(current)`; the in-memory state follows only once the file is written. */
  update(change: (s: Readonly<AgentState>) => AgentState): Promise<void> {
    const next = this.chain.then(async () => {
      // state.json always says which version is installed, also before the first commit.
      const s = { currentVersion: this.currentVersion, ...change(this.state) };
      await writeState(this.dir, s);
      this.state = s;
    });
    this.chain = next.catch(() => {});
    return next;
  }
}
