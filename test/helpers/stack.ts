import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../src/cloud/stack.ts';

/** Every listener of the local stack on a free loopback port: tests never hard-code ports. */
export const FREE_PORTS = { host: '127.0.0.1', mqttPort: 0, wsPort: 0, iotPort: 0, s3Port: 0 } as const;

export interface TestStack {
  /** The temp dir; the stack's data dir is `<dir>/data`. */
  dir: string;
  stack: LocalStack;
  /** Closes the stack and removes the temp dir. */
  close(): Promise<void>;
}

/** A local stack in a fresh temp dir, on free ports. */
export async function startTestStack(
  prefix: string,
  options: Omit<LocalStackOptions, 'dataDir'> = {},
): Promise<TestStack> {
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const stack = await startLocalStack({ dataDir: join(dir, 'data'), ...FREE_PORTS, ...options });
  return {
    dir,
    stack,
    close: async () => {
      await stack.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
