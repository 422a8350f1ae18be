import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configPath, contextNameFor, loadConfig, resolveTarget, saveConfig, upsertContext } from './config.js';

const made: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeplane-config-'));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

describe('config path', () => {
  it('prefers EDGEPLANE_CONFIG, then XDG_CONFIG_HOME, then ~/.config', () => {
    expect(configPath({ EDGEPLANE_CONFIG: '/x/c.yaml', XDG_CONFIG_HOME: '/xdg', HOME: '/home/u' })).toBe('/x/c.yaml');
    expect(configPath({ XDG_CONFIG_HOME: '/xdg', HOME: '/home/u' })).toBe('/xdg/edgeplane/config.yaml');
    expect(configPath({ HOME: '/home/u' })).toBe('/home/u/.config/edgeplane/config.yaml');
  });
});

describe('config file', () => {
  it('reads a missing file as empty and round-trips contexts with mode 0600', () => {
    const path = join(tmp(), 'nested', 'config.yaml');
    expect(loadConfig(path)).toEqual({ contexts: [] });
    const config = upsertContext({ contexts: [] }, { name: 'local', server: 'http://localhost:8080', token: 't1' });
    saveConfig(path, { ...config, currentContext: 'local' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadConfig(path)).toEqual({ currentContext: 'local', contexts: [{ name: 'local', server: 'http://localhost:8080', token: 't1' }] });
    // Replacing a context keeps one entry per name.
    const updated = upsertContext(loadConfig(path), { name: 'local', server: 'http://localhost:8080', token: 't2' });
    expect(updated.contexts).toHaveLength(1);
    expect(updated.contexts[0].token).toBe('t2');
  });

  it('tightens the mode of an existing world-readable file', () => {
    const path = join(tmp(), 'config.yaml');
    writeFileSync(path, 'contexts: []\n', { mode: 0o644 });
    saveConfig(path, { contexts: [] });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('rejects a file that is not YAML', () => {
    const path = join(tmp(), 'config.yaml');
    writeFileSync(path, 'contexts: [unclosed\n');
    expect(() => loadConfig(path)).toThrow(/cannot parse/);
  });

  it('names contexts after the server', () => {
    expect(contextNameFor('http://localhost:8080')).toBe('localhost-8080');
    expect(contextNameFor('https://edge.example.com/')).toBe('edge.example.com');
  });
});

describe('resolveTarget', () => {
  const setup = () => {
    const path = join(tmp(), 'config.yaml');
    saveConfig(path, {
      currentContext: 'a',
      contexts: [
        { name: 'a', server: 'http://a:8080', token: 'ta' },
        { name: 'b', server: 'http://b:8080', token: 'tb' },
      ],
    });
    return { EDGEPLANE_CONFIG: path };
  };

  it('uses the current context by default', () => {
    expect(resolveTarget({}, setup())).toEqual({ server: 'http://a:8080', token: 'ta', context: 'a' });
  });
  it('lets env override the current context, flags override env, and --context override env', () => {
    const env = { ...setup(), EDGEPLANE_SERVER: 'http://env:1', EDGEPLANE_TOKEN: 'tenv' };
    expect(resolveTarget({}, env)).toMatchObject({ server: 'http://env:1', token: 'tenv' });
    expect(resolveTarget({ server: 'http://flag:1', token: 'tflag' }, env)).toMatchObject({ server: 'http://flag:1', token: 'tflag' });
    expect(resolveTarget({ context: 'b' }, env)).toMatchObject({ server: 'http://b:8080', token: 'tb' });
  });
  it("never sends a context's token to another server", () => {
    expect(resolveTarget({ server: 'http://elsewhere:1' }, setup())).toEqual({ server: 'http://elsewhere:1', token: undefined, context: 'a' });
  });
  it('fails clearly without a server or with an unknown context', () => {
    expect(() => resolveTarget({}, { EDGEPLANE_CONFIG: join(tmp(), 'none.yaml') })).toThrow(/no server configured/);
    expect(() => resolveTarget({ context: 'zzz' }, setup())).toThrow(/context "zzz" not found .*known: a, b/);
  });
});
