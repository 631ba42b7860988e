import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../../src/cloud/broker/broker.ts';
import type { BrokerOptions, RunningBroker } from '../../src/cloud/broker/types.ts';
import { ensureLocalCa, type LocalCa } from '../../src/cloud/pki/pki.ts';

/**
 * A broker on loopback, on free ports, with a fresh local CA (server and client certificates) in a new
 * temp directory `<dirPrefix>…`; the caller closes the broker and removes `dir`.
 */
export async function startCaBroker(
  dirPrefix: string,
  options: Omit<BrokerOptions, 'host' | 'mqttPort' | 'wsPort' | 'tls'>,
): Promise<{ dir: string; ca: LocalCa; broker: RunningBroker }> {
  const dir = await mkdtemp(join(tmpdir(), dirPrefix));
  const ca = await ensureLocalCa(join(dir, 'pki'));
  const broker = await startBroker({
    host: '127.0.0.1',
    mqttPort: 0,
    wsPort: 0,
    tls: { ca: ca.caCertPem, cert: ca.serverCertPem, key: ca.serverKeyPem },
    ...options,
  });
  return { dir, ca, broker };
}
