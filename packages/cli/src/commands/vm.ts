import type { VmList } from '@edgeplane/protocol';
import { type Command, Option } from 'commander';
import type { ConnectionFlags } from '../config.js';
import { renderTable, toJson, toYaml } from '../output.js';
import { intArg } from '../parse.js';
import { type CommandContext, clientFor, examples, withConnectionOptions } from './common.js';
import { streamLogs } from './logs.js';
import { type SessionFlags, withSessionOptions } from './session.js';

interface VmListOptions extends ConnectionFlags {
  output: 'table' | 'json' | 'yaml';
}

/** `edgeplane vm list CLUSTER` and `edgeplane vm xml CLUSTER VM`: the VMs of a virtualized cluster. */
export function registerVm(program: Command, ctx: CommandContext): void {
  const vm = program
    .command('vm')
    .summary('VMs of virtualized clusters (list, domain XML, serial console)')
    .description('Inspect the VMs of a virtualized cluster (spec.type: virtualized): what each asks for, its libvirt domain state and its node.')
    .addHelpText('after', examples('edgeplane vm list shop-1', 'edgeplane vm xml shop-1 cp1', 'edgeplane vm console shop-1 cp1'));

  const list = vm
    .command('list')
    .alias('ls')
    .summary("list a virtualized cluster's VMs")
    .description(
      'List the VMs of a virtualized cluster: role, vCPUs, memory, disk, network and storage pool, the libvirt domain state the ' +
        "appliance reports, and the state of the VM's node (pre-registered until its agent registered).",
    )
    .argument('<cluster>', 'name of the virtualized cluster')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'));
  withConnectionOptions(list)
    .addHelpText('after', examples('edgeplane vm list shop-1', 'edgeplane vm list shop-1 -o yaml'))
    .action(async (cluster: string, opts: VmListOptions) => {
      const client = clientFor(opts, ctx.io);
      const r = await client.request<VmList>('GET', `clusters/${encodeURIComponent(cluster)}/vms`);
      if (opts.output === 'json') return void ctx.io.stdout.write(toJson(r));
      if (opts.output === 'yaml') return void ctx.io.stdout.write(toYaml(r));
      ctx.io.stdout.write(
        renderTable(
          ['NAME', 'ROLE', 'VCPUS', 'MEMORY', 'DISK', 'NETWORK', 'POOL', 'DOMAIN', 'STATE', 'NODE', 'NODE STATE'],
          r.items.map((v) => [
            v.name,
            v.role,
            String(v.vcpus),
            `${v.memoryMiB}Mi`,
            `${v.diskGiB}Gi`,
            v.network,
            v.storagePool,
            v.domain,
            v.state ?? '<pending>',
            v.host,
            v.hostState ? `${v.hostState}/${v.connectivity}` : '',
          ]),
        ),
      );
    });

  const xml = vm
    .command('xml')
    .summary("print a VM's libvirt domain XML")
    .description("Print the domain XML of one VM as libvirt on the appliance holds it (what the appliance's agent generated and defined).")
    .argument('<cluster>', 'name of the virtualized cluster')
    .argument('<vm>', 'VM name (spec.vms[].name)');
  withConnectionOptions(xml)
    .addHelpText('after', examples('edgeplane vm xml shop-1 cp1', 'edgeplane vm xml shop-1 w1 > w1.xml'))
    .action(async (cluster: string, name: string, opts: ConnectionFlags) => {
      const client = clientFor(opts, ctx.io);
      const r = await client.request<{ xml: string }>('GET', `clusters/${encodeURIComponent(cluster)}/vms/${encodeURIComponent(name)}/domain.xml`);
      ctx.io.stdout.write(r.xml.endsWith('\n') ? r.xml : `${r.xml}\n`);
    });

  const consoleCmd = vm
    .command('console')
    .summary("show a VM's serial console output")
    .description(
      "Show the last lines of a VM's serial console (boot loader, kernel, agent) as libvirt logs it on the appliance, " +
        "read through the appliance's agent like `edgeplane logs <appliance> --source vm:<domain>`: a remote session on " +
        'the appliance, so it needs the hosts:remote-shell permission and is audited.',
    )
    .argument('<cluster>', 'name of the virtualized cluster')
    .argument('<vm>', 'VM name (spec.vms[].name)')
    .option('-f, --follow', 'keep streaming new lines until Ctrl+C or the session limit')
    .option('-n, --lines <n>', 'how many of the last lines to show first', intArg('--lines'), 100);
  withSessionOptions(consoleCmd, false)
    .addHelpText('after', examples('edgeplane vm console shop-1 cp1', 'edgeplane vm console shop-1 w1 -f --reason "INC-7 w1 does not register"'))
    .action(async (cluster: string, name: string, flags: SessionFlags & { follow?: boolean; lines: number }) => {
      const client = clientFor(flags, ctx.io);
      const vms = await client.request<VmList>('GET', `clusters/${encodeURIComponent(cluster)}/vms`);
      const found = vms.items.find((v) => v.name === name);
      if (!found) {
        ctx.io.stderr.write(`edgeplane: cluster "${cluster}" has no VM "${name}" (it has: ${vms.items.map((v) => v.name).join(', ') || 'none'})\n`);
        ctx.exitCode = 1;
        return;
      }
      await streamLogs(ctx, found.appliance, flags, `vm:${found.domain}`, flags.reason ?? `read the serial console of VM ${cluster}/${name}`);
    });
}
