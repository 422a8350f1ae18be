// biome-ignore-all lint/suspicious/noTemplateCurlyInString: GRUB script text, ${...} is GRUB syntax, not a JS placeholder
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DEFAULT_KERNEL_ARGS, grubConfig } from './build.js';

const run = promisify(execFile);

describe('grubConfig', () => {
  it('fills every placeholder: grubenv beside grub.cfg, no menu delay, the kernel arguments', async () => {
    const cfg = await grubConfig('console=ttyS0,115200 quiet');
    expect(cfg).not.toMatch(/@[A-Z_]+@/);
    expect(cfg).toContain('load_env --file ${prefix}/grubenv active_slot next_slot try_slot');
    expect(cfg).toContain('set timeout=0');
    expect(cfg).toContain('linux /boot/vmlinuz root=PARTLABEL=root-a ro edgeplane.slot=A panic=5 console=ttyS0,115200 quiet');
    expect(cfg).toContain('linux /boot/vmlinuz root=PARTLABEL=root-b ro edgeplane.slot=B panic=5 console=ttyS0,115200 quiet');
  });

  it('boots next_slot once: clears and saves it before the entry is chosen, with the committed slot as fallback', async () => {
    const cfg = await grubConfig(DEFAULT_KERNEL_ARGS);
    const lines = cfg.split('\n').map((l) => l.trim());
    const at = (line: string) => {
      const i = lines.indexOf(line);
      expect(i, line).toBeGreaterThanOrEqual(0);
      return i;
    };
    const branch = at('if [ -n "${next_slot}" ]; then');
    const pick = at('set slot="${next_slot}"');
    const clear = at('set next_slot=');
    const save = at('save_env --file ${prefix}/grubenv next_slot');
    const firstEntry = lines.findIndex((l) => l.startsWith('menuentry '));
    expect(branch).toBeLessThan(pick);
    expect(pick).toBeLessThan(clear);
    expect(clear).toBeLessThan(save);
    expect(save).toBeLessThan(at('set default="${slot}"'));
    expect(at('set fallback="1 2"')).toBeLessThan(firstEntry);
    expect(at('set fallback="0 2"')).toBeLessThan(firstEntry);
    expect(at('set fallback="2"')).toBeLessThan(firstEntry);
    // The fallback list uses entry numbers: the entries must stay in the order A (0), B (1), recovery (2).
    expect(lines.filter((l) => l.startsWith('menuentry ')).map((l) => /--id (\S+)/.exec(l)?.[1])).toEqual(['A', 'B', 'recovery']);
    // Only next_slot is saved by the boot loader: active_slot and try_slot belong to the agent.
    expect(cfg.match(/save_env/g)).toHaveLength(1);
    // Slot entries are found by partition number on the disk GRUB started from.
    expect(cfg).toContain('set root=(${disk},gpt2)');
    expect(cfg).toContain('set root=(${disk},gpt3)');
  });

  it('is a script GRUB parses (grub-script-check)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ep-grubcfg-'));
    try {
      const file = join(dir, 'grub.cfg');
      await writeFile(file, await grubConfig(DEFAULT_KERNEL_ARGS));
      await expect(run('grub-script-check', [file])).resolves.toBeDefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
