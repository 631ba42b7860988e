import { InvalidArgumentError, Option } from 'commander';
import type { Target } from '../operator/clients.ts';
import type { Endpoints } from '../shared/endpoints.ts';
import { readEndpoints, resolveDataDir } from '../shared/endpoints.ts';
import { noteLocalStack } from './errors.ts';

/** A port to listen on: 0 asks the system for a free one. */
export function parsePort(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new InvalidArgumentError(`${flag}: must be 0-65535 (0 = a free port)`);
    return n;
  };
}

/** A port to connect to: 1-65535, as the agent's config schema says (docs/agent.md). */
export function parseConnectPort(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new InvalidArgumentError(`${flag}: must be 1-65535`);
    return n;
  };
}

export function parsePositiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag}: must be a positive integer`);
    return n;
  };
}

export const dataDirOption = () =>
  new Option('--data-dir <dir>', 'local stack data dir (env OTA_DATA_DIR)').default(undefined, '.ota');

/** `--aws` targets AWS itself (default credential chain, AWS_REGION / --region, AWS_PROFILE / --profile). */
export const awsOptions = () => [
  new Option('--aws', 'target AWS IoT itself instead of the local stack'),
  new Option('--region <region>', 'AWS region (with --aws; default from AWS settings)'),
  new Option('--profile <profile>', 'AWS shared-config profile (with --aws)'),
];

export interface TargetFlags {
  aws?: boolean;
  region?: string;
  profile?: string;
  dataDir?: string;
}

export function targetFrom(flags: TargetFlags): Target {
  if (flags.aws) return { kind: 'aws', region: flags.region, profile: flags.profile };
  return { kind: 'local', endpoints: localEndpoints(flags.dataDir) };
}

export function localEndpoints(dataDir?: string): Endpoints {
  const dir = resolveDataDir(dataDir);
  const endpoints = readEndpoints(dir);
  noteLocalStack(dir);
  return endpoints;
}
