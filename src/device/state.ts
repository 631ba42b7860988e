import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What survives a reboot, in `<stateDir>/state.json`:
 * - `currentVersion`: the firmware now installed (the original hard-coded 41811019, seed 3-1);
 * - `inFlight`: the job being downloaded. With the `.part` file and its sidecar (`<file>.part.json`:
 *   object identity, size, ETag/Last-Modified) it lets a restarted agent resume with Range: the Jobs
 *   service hands the IN_PROGRESS execution back first on start-next (reference section 1), the agent
 *   resolves the same file name, and downloadFirmware resumes from the bytes on disk.
 */
export interface AgentState {
  currentVersion?: string;
  updatedAt?: string;
  lastJob?: { jobId: string; status: string; version?: string; at: string };
  inFlight?: { jobId: string; fileName: string; version: string; startedAt: string };
}

export const STATE_FILE = 'state.json';

export async function readState(stateDir: string): Promise<AgentState> {
  try {
    const v = JSON.parse(await readFile(join(stateDir, STATE_FILE), 'utf8')) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as AgentState) : {};
  } catch {
    return {};
  }
}

/** Atomic replace: write a temp file, fsync it, rename over state.json, fsync the directory. */
export async function writeState(stateDir: string, state: AgentState): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const file = join(stateDir, STATE_FILE);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  try {
    const d = await open(stateDir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // directories cannot be fsynced on every platform; the rename is atomic regardless
  }
}
