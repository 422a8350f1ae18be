import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { defaultIo } from './io.js';
import { buildProgram } from './program.js';
import { runCli } from './test-support.js';

function walk(cmd: Command, path: string[] = []): string[][] {
  // Hidden commands (`__complete`, which the completion scripts call) have no help of their own.
  return cmd.commands.filter((c) => c.name() !== 'help' && !c.name().startsWith('__')).flatMap((c) => [[...path, c.name()], ...walk(c, [...path, c.name()])]);
}

const paths = walk(await buildProgram({ io: defaultIo(), exitCode: 0 }));

describe('--help', () => {
  it('covers the expected commands', () => {
    const names = paths.map((p) => p.join(' '));
    for (const expected of [
      'server',
      'agent',
      'sim',
      'login',
      'get',
      'describe',
      'delete',
      'apply',
      'approve',
      'reject',
      'revoke',
      'create token',
      'config use-context',
      'vm list',
      'vm xml',
    ]) {
      expect(names).toContain(expected);
    }
  });

  it.each(paths.map((p) => [p.join(' '), p] as const))('edgeplane %s --help describes the command with examples', async (_name, path) => {
    const r = await runCli([...path, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: edgeplane ${path.join(' ')}`);
    expect(r.stdout).toContain('Examples:\n  $ edgeplane ');
  });

  it('prints top-level help and the version', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: edgeplane');
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('fails on an unknown command with a hint', async () => {
    const r = await runCli(['gett', 'hosts']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown command 'gett'");
    expect(r.stderr).toContain('get');
  });
});
