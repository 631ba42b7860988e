import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { s3ClientFor } from '../../operator/clients.ts';
import { putFirmware } from '../../operator/firmware.ts';
import { ValidationError } from '../../shared/errors.ts';
import { awsOptions, dataDirOption, targetFrom } from '../options.ts';

export function registerFirmwareCommands(program: Command): void {
  const firmware = program.command('firmware').description('firmware images in S3');
  const put = firmware
    .command('put <file>')
    .description(
      'upload an image and print a ready job document {"firmware":{version,size,region,url,sha256[,signature]}}',
    )
    .option('--key <key>', 'object key (default firmware/<name>/<file>)')
    .option('--version <version>', 'firmware version for the document', '1')
    .option('--name <name>', 'firmware name (the key folder; default: file name without extension)')
    .option('--bucket <bucket>', 'bucket (default: the local stack bucket; required with --aws)')
    .option('--out <file>', 'write the job document to FILE instead of stdout')
    .option(
      '--sign-key <pem>',
      'EC P-256 private key (PKCS#8 or SEC1 PEM file): add firmware.signature over the sha256',
    )
    .option('--device-type <type>', 'write firmware.deviceType: agents of another --device-type refuse it')
    .addOption(dataDirOption());
  for (const o of awsOptions()) put.addOption(o);
  put.action(async (file: string, flags) => {
    const target = targetFrom(flags);
    const bucket = flags.bucket ?? (target.kind === 'local' ? target.endpoints.s3.bucket : undefined);
    if (!bucket) throw new ValidationError('--bucket', 'required with --aws');
    const region =
      target.kind === 'local'
        ? target.endpoints.region
        : (flags.region ?? process.env.AWS_REGION ?? 'us-east-1');
    const signKey = flags.signKey ? await readKeyFile(flags.signKey) : undefined;
    const out = await putFirmware({
      file,
      bucket,
      key: flags.key,
      version: flags.version,
      name: flags.name,
      region,
      s3: s3ClientFor(target),
      ...(signKey ? { signKey } : {}),
      ...(flags.deviceType ? { deviceType: flags.deviceType } : {}),
    });
    const text = `${JSON.stringify(out.document, null, 2)}\n`;
    if (flags.out) {
      await writeFile(flags.out, text);
      process.stderr.write(`uploaded s3://${out.bucket}/${out.key}; job document written to ${flags.out}\n`);
    } else {
      process.stdout.write(text);
    }
  });
}

async function readKeyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ValidationError(
      '--sign-key',
      `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
