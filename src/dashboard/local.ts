import type { Endpoints } from '../shared/endpoints.ts';
import type { Logger } from '../shared/log.ts';
import { type RunningDashboard, startDashboard } from './server.ts';
import { localSource } from './sources.ts';

/**
 * The dashboard of a local stack (`ota dev`, `ota dashboard` without --aws): it reads the stack through
 * its control plane and its MQTT-over-WebSocket listener, exactly as it would read AWS.
 */
export async function startLocalDashboard(
  endpoints: Endpoints,
  opts: { host?: string; port?: number; progressPrefix?: string; logger?: Logger } = {},
): Promise<RunningDashboard & { label: string }> {
  const source = localSource(endpoints);
  try {
    const dashboard = await startDashboard({ ...source, ...opts });
    return {
      ...dashboard,
      label: source.label,
      close: async () => {
        await dashboard.close();
        source.iot.destroy();
      },
    };
  } catch (err) {
    source.iot.destroy();
    throw err;
  }
}
