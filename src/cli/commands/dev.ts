import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../cloud/stack.ts';
import { ENDPOINTS_FILE } from '../../shared/endpoints.ts';
import { OtaError } from '../../shared/errors.ts';

export const DEV_DEFAULT_PORTS = {
  mqtt: 8883,
  ws: 8083,
  wss: 8084,
  iot: 8780,
  s3: 4569,
  dashboard: 8790,
} as const;

export async function runDev(options: LocalStackOptions): Promise<{ stack: LocalStack; banner: string }> {
  let stack: LocalStack;
  try {
    stack = await startLocalStack(options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { port?: number };
    if (e.code === 'EADDRINUSE') {
      throw new OtaError(
        'OTA_PORT_IN_USE',
        `${e.message}: another process holds that port (is \`ota dev\` already running?). ` +
          'Choose others with --mqtt-port/--ws-port/--wss-port/--iot-port/--s3-port/--dashboard-port, or 0 for free ports.',
        { cause: err },
      );
    }
    throw err;
  }
  return { stack, banner: banner(stack) };
}

function banner(stack: LocalStack): string {
  const e = stack.endpoints;
  const dd = stack.dataDir;
  const things = Object.keys(e.things).join(', ') || '(none)';
  return [
    'ota dev: local AWS IoT stack is ready',
    '',
    `  MQTT (mTLS)     mqtts://${e.mqtt.host}:${e.mqtt.port}   (client cert CN = thing name = client id)`,
    `  MQTT over WS    ${e.ws.url}   (SigV4-presigned URL, operator rights)`,
    ...(e.wss ? [`  MQTT over WSS   ${e.wss.url}   (TLS with the root CA below, SigV4-presigned URL)`] : []),
    `  IoT API         ${e.iot.endpoint}   (@aws-sdk/client-iot, SigV4)`,
    `  S3              ${e.s3.endpoint}   bucket ${e.s3.bucket}`,
    ...(e.dashboard ? [`  Dashboard       ${e.dashboard.url}   (live fleet view in the browser)`] : []),
    `  Root CA         ${e.rootCA}`,
    `  Things          ${things}`,
    `  Data dir        ${dd}   (${ENDPOINTS_FILE} has every endpoint and credential)`,
    '',
    'Try, from another terminal:',
    `  npx ota firmware put ./image.img --key firmware/CV150-C3_0.6.6/cv150_ubifs.img --version 41811020 --out rasp-ota-job-docs.json --data-dir ${dd}`,
    `  npx ota job create --job-id rasp-ota-test --thing RaspberryPi_2 --document rasp-ota-job-docs.json --continuous --data-dir ${dd}`,
    `  npx ota agent --local ${dd} -n RaspberryPi_2 --current-version 41811019 --once`,
    `  npx ota watch --data-dir ${dd}`,
    `  npx ota job executions rasp-ota-test --data-dir ${dd}`,
    '',
    'Ctrl-C stops the stack; its state stays in the data dir.',
  ].join('\n');
}
