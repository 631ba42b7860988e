import type { Command } from 'commander';
import { iotClientFor } from '../../operator/clients.ts';
import { provisionDevice } from '../../operator/provision.ts';
import { json } from '../format.ts';
import { awsOptions, dataDirOption, targetFrom } from '../options.ts';

export function registerProvisionCommand(program: Command): void {
  const cmd = program
    .command('provision <thingName>')
    .description(
      'create a thing, its certificate and key, a least-privilege IoT policy (and a role alias), and write an agent config file',
    )
    .option(
      '--out-dir <dir>',
      'where the certificate, key and <thing>.agent.json go (default ./ota-device-<thing>)',
    )
    .option('--policy-name <name>', 'IoT policy to create or reuse (default ota-agent[-<role alias>])')
    .option(
      '--role-alias <alias>',
      'role alias for S3 downloads through the credentials provider (created if missing)',
    )
    .option(
      '--role-arn <arn>',
      'IAM role behind a new role alias (required with --aws when the alias is new)',
    )
    .option('--progress-prefix <prefix>', 'progress topic prefix the policy allows', 'CarVi/test/firmware')
    .addOption(dataDirOption())
    .option('--json', 'print JSON');
  for (const o of awsOptions()) cmd.addOption(o);
  cmd.action(async (thingName: string, flags) => {
    const target = targetFrom(flags);
    const iot = iotClientFor(target);
    try {
      const out = await provisionDevice({
        target,
        iot,
        thingName,
        outDir: flags.outDir ?? `ota-device-${thingName}`,
        progressPrefix: flags.progressPrefix,
        ...(flags.policyName ? { policyName: flags.policyName } : {}),
        ...(flags.roleAlias ? { roleAlias: flags.roleAlias } : {}),
        ...(flags.roleArn ? { roleArn: flags.roleArn } : {}),
      });
      process.stdout.write(
        flags.json
          ? `${json(out)}\n`
          : [
              `provisioned ${out.thingName}${target.kind === 'aws' ? ' on AWS IoT' : ' on the local stack'}`,
              `  certificate  ${out.certificateId}`,
              `  policy       ${out.policyName}${out.policyCreated ? ' (created)' : ' (existing)'}`,
              ...(out.roleAlias ? [`  role alias   ${out.roleAlias}  via ${out.credentialsEndpoint}`] : []),
              `  endpoint     ${out.endpoint}`,
              `  cert         ${out.files.cert}`,
              `  key          ${out.files.key}`,
              `  config       ${out.files.config}`,
              '',
              `run it:  npx ota agent --config ${out.files.config}`,
              '',
            ].join('\n'),
      );
    } finally {
      iot.destroy();
    }
  });
}
