import { readEndpoints } from '../shared/endpoints.ts';
import { errorMessage, OtaError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { startLocalDashboard } from './local.ts';
import { type RunningDashboard, startDashboard } from './server.ts';
import { awsSource } from './sources.ts';

/**
 * `ota dashboard`: the dashboard on its own, against the local stack of a data dir or, with `aws`,
 * against AWS IoT with the operator's credentials. It returns once the live feed is connected, or throws
 * one line that says what to do.
 */
export interface ServeDashboardOptions {
  aws?: boolean;
  region?: string;
  profile?: string;
  dataDir: string;
  host?: string;
  port?: number;
  progressPrefix?: string;
  logger?: Logger;
  /** How long the first MQTT connection may take (ms). */
  connectTimeoutMs?: number;
}

export async function serveDashboard(
  o: ServeDashboardOptions,
): Promise<RunningDashboard & { label: string }> {
  const opts = { host: o.host, port: o.port, progressPrefix: o.progressPrefix, logger: o.logger };
  let dash: RunningDashboard & { label: string };
  if (o.aws) {
    const source = await awsSource({ region: o.region, profile: o.profile });
    try {
      const d = await startDashboard({ ...source, ...opts });
      dash = {
        ...d,
        label: source.label,
        close: async () => {
          await d.close();
          source.iot.destroy();
        },
      };
    } catch (err) {
      source.iot.destroy();
      throw err;
    }
  } else {
    dash = await startLocalDashboard(readEndpoints(o.dataDir), opts);
  }
  const timeoutMs = o.connectTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      dash.feedReady,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    await dash.close();
    const where = o.aws
      ? 'AWS IoT'
      : `the local stack at ${o.dataDir} (is \`ota dev --data-dir ${o.dataDir}\` running?)`;
    throw new OtaError(
      'OTA_DASHBOARD_FEED',
      `cannot subscribe over MQTT/WebSocket to ${where}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    clearTimeout(timer);
  }
  return dash;
}
