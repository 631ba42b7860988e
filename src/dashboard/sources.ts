import { DescribeEndpointCommand, type IoTClient } from '@aws-sdk/client-iot';
import { iotClientFor } from '../operator/clients.ts';
import type { Endpoints } from '../shared/endpoints.ts';
import { ConfigError } from '../shared/errors.ts';
import type { WsSigningCredentials } from '../shared/ws-url.ts';

/**
 * Where the dashboard reads from: the IoT control plane (@aws-sdk/client-iot) and an MQTT-over-WebSocket
 * endpoint with the credentials that sign its URL. The local stack and AWS differ only here.
 */
export interface DashboardSource {
  iot: IoTClient;
  mqttUrl: string;
  region: string;
  credentials: () => Promise<WsSigningCredentials>;
  ca?: string;
  /** Where it points, for the banner. */
  label: string;
}

/** The local stack of endpoints.json: its control plane and its WebSocket listener, with its keys. */
export function localSource(endpoints: Endpoints): DashboardSource {
  const { accessKeyId, secretAccessKey } = endpoints.iot;
  return {
    iot: iotClientFor({ kind: 'local', endpoints }),
    // The plain WebSocket listener: loopback, and signed like AWS's (the broker verifies SigV4).
    mqttUrl: endpoints.ws.url,
    region: endpoints.region,
    credentials: async () => ({ accessKeyId, secretAccessKey }),
    label: `local stack ${endpoints.iot.endpoint}`,
  };
}

/**
 * AWS IoT itself: the operator's default credential chain (or `profile`), the account's ATS data
 * endpoint from DescribeEndpoint (`iot:Data-ATS`), and MQTT over WSS on port 443 signed with SigV4.
 */
export async function awsSource(opts: { region?: string; profile?: string }): Promise<DashboardSource> {
  const iot = iotClientFor({ kind: 'aws', region: opts.region, profile: opts.profile });
  let region: string;
  let host: string | undefined;
  try {
    region = await iot.config.region();
    host = (await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }))).endpointAddress;
  } catch (err) {
    // The CLI explains the SDK's own errors (no credentials, no region) in one line.
    iot.destroy();
    throw err;
  }
  if (!host) throw new ConfigError('AWS: DescribeEndpoint returned no iot:Data-ATS endpoint');
  return {
    iot,
    mqttUrl: `wss://${host}/mqtt`,
    region,
    credentials: async () => {
      const c = await iot.config.credentials();
      return {
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
      };
    },
    label: `AWS IoT ${host} (${region})`,
  };
}
