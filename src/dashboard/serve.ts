import { type Endpoints, readEndpoints } from '../shared/endpoints.ts';
import { errorMessage, OtaError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { type RunningDashboard, startDashboard } from './server.ts';
import { awsSource, type DashboardSource, localSource } from './sources.ts';

/**
 * Starting the dashboard against a source: `ota dev` (the stack it runs), `ota dashboard` (a local stack
 * of a data dir, or AWS IoT with `aws`). The dashboard owns the source's IoT client and closes it.
 */
export interface ListenOptions {
  host?: string;
  port?: number;
  progressPrefix?: string;
  logger?: Logger;
}

export type ServedDashboard = RunningDashboard & { label: string };

export async function startDashboardFor(
  source: DashboardSource,
  opts: ListenOptions,
): Promise<ServedDashboard> {
  try {
    const d = await startDashboard({ ...source, ...opts });
    return {
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
}

/**
 * The dashboard of a local stack: it reads the stack through its control plane and its
 * MQTT-over-WebSocket listener, exactly as it would read AWS.
 */
export function startLocalDashboard(
  endpoints: Endpoints,
  opts: ListenOptions = {},
): Promise<ServedDashboard> {
  return startDashboardFor(localSource(endpoints), opts);
}

export interface ServeDashboardOptions extends ListenOptions {
  aws?: boolean;
  region?: string;
  profile?: string;
  dataDir: string;
  /** How long the first MQTT connection may take (ms). */
  connectTimeoutMs?: number;
}

/**
 * `ota dashboard`: returns once the live feed is connected, or throws one line that says what to do.
 */
export async function serveDashboard(o: ServeDashboardOptions): Promise<ServedDashboard> {
  const opts = { host: o.host, port: o.port, progressPrefix: o.progressPrefix, logger: o.logger };
  const dash = o.aws
    ? await startDashboardFor(await awsSource({ region: o.region, profile: o.profile }), opts)
    : await startLocalDashboard(readEndpoints(o.dataDir), opts);
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
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
  return dash;
}
