import { describe, expect, it } from 'vitest';
import { type Exec, ExecError } from '../exec.js';
import { ServiceError, SystemdServiceManager } from '../services.js';

describe('SystemdServiceManager', () => {
  it('drives systemctl and reads is-active from the exit status', async () => {
    const calls: string[] = [];
    const active = new Set<string>();
    const exec: Exec = async (command, args) => {
      calls.push([command, ...args].join(' '));
      const unit = args[args.length - 1];
      if (args[0] === 'start') active.add(unit);
      if (args[0] === 'is-active' && !active.has(unit)) throw new ExecError(command, args, '', 3);
      return { stdout: '', stderr: '' };
    };
    const systemd = new SystemdServiceManager(exec);
    expect(await systemd.isActive('k3s')).toBe(false);
    await systemd.enable('k3s');
    await systemd.start('k3s');
    expect(await systemd.isActive('k3s')).toBe(true);
    expect(calls).toEqual([
      'systemctl is-active --quiet k3s.service',
      'systemctl enable k3s.service',
      'systemctl start --no-block k3s.service',
      'systemctl is-active --quiet k3s.service',
    ]);
  });

  it('reports a failed start with what systemctl said', async () => {
    const exec: Exec = async (command, args) => {
      throw new ExecError(command, args, 'Job for rke2-agent.service failed because the control process exited with error code.', 1);
    };
    const err = await new SystemdServiceManager(exec).start('rke2-agent').catch((e) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.message).toMatch(/control process exited.*journalctl -u rke2-agent.service/);
    expect(err.retryable).toBe(true);
  });

  it('reports a unit the OS image does not have as not retryable', async () => {
    const exec: Exec = async (command, args) => {
      throw new ExecError(command, args, 'Failed to start k3s.service: Unit k3s.service not found.', 5);
    };
    await expect(new SystemdServiceManager(exec).start('k3s')).rejects.toMatchObject({ retryable: false });
  });
});
