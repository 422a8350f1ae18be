import { findKind } from '@edgeplane/protocol';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { defaultIo } from './io.js';
import { buildProgram } from './program.js';
import { runCli } from './test-support.js';

/**
 * Splits a line of shell into its simple commands (argv lists), as far as help examples need:
 * quotes, backslashes, `$(...)` and `<(...)` (the commands inside are listed too, the substitution
 * stays one opaque word), `|`, `||`, `&&`, `;`, redirections (dropped with their target), comments
 * and leading VAR=value assignments.
 */
export function shellCommands(line: string): string[][] {
  const commands: string[][] = [];
  let argv: string[] = [];
  let word: string | undefined;
  let redirect = false;
  const endWord = () => {
    if (word !== undefined && !redirect) argv.push(word);
    if (word !== undefined) redirect = false;
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    while (argv.length && /^[A-Za-z_]\w*=/.test(argv[0])) argv.shift();
    if (argv.length) commands.push(argv);
    argv = [];
  };
  // Index of the `)` closing the `(` at `open`.
  const closing = (open: number) => {
    let depth = 0;
    for (let j = open; j < line.length; j++) {
      if (line[j] === '(') depth++;
      if (line[j] === ')' && --depth === 0) return j;
    }
    throw new Error(`unbalanced parentheses in: ${line}`);
  };
  const substitute = (open: number) => {
    const close = closing(open);
    commands.push(...shellCommands(line.slice(open + 1, close)));
    word = `${word ?? ''}<substitution>`;
    return close + 1;
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === '\\') {
      word = (word ?? '') + line[i + 1];
      i += 2;
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new Error(`unbalanced quote in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, close);
      i = close + 1;
    } else if (c === '"') {
      word = word ?? '';
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\') {
          word += line[i + 1];
          i += 2;
        } else if (line[i] === '$' && line[i + 1] === '(') {
          i = substitute(i + 1);
        } else {
          word += line[i++];
        }
      }
      if (i >= line.length) throw new Error(`unbalanced quote in: ${line}`);
      i++;
    } else if ((c === '$' || c === '<') && line[i + 1] === '(') {
      i = substitute(i + 1);
    } else if (c === '|' || c === ';' || c === '&') {
      endCommand();
      i += line[i + 1] === c ? 2 : 1;
    } else if (c === '>' || c === '<') {
      // `2>` : the 2 belongs to the redirection.
      if (word === '2' || word === '1') word = undefined;
      endWord();
      redirect = true;
      i += line[i + 1] === '>' ? 2 : 1;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  endCommand();
  return commands;
}

function commandPaths(cmd: Command, path: string[] = []): string[][] {
  return cmd.commands.filter((c) => c.name() !== 'help').flatMap((c) => [[...path, c.name()], ...commandPaths(c, [...path, c.name()])]);
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

/** The `$ ...` lines under "Examples:" in a help text. */
function examplesIn(help: string): string[] {
  const at = help.indexOf('\nExamples:\n');
  if (at < 0) return [];
  return help
    .slice(at)
    .split('\n')
    .filter((l) => l.startsWith('  $ '))
    .map((l) => l.slice(4));
}

/**
 * Parses `edgeplane ARGS` with the real command tree but with every action replaced by a no-op:
 * unknown commands and options, missing required options, bad values (durations, choices, counts)
 * and excess arguments fail as they would for a user; nothing runs.
 */
async function parseOnly(args: string[]): Promise<string | undefined> {
  let out = '';
  const io = defaultIo({ stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (out += s) }, env: {} });
  const program = await buildProgram({ io, exitCode: 0 }, args);
  for (const c of allCommands(program)) {
    if (c === program) continue;
    // No action runs; only the kind a `<kind>` argument names is checked, as the action would.
    c.action((...values: unknown[]) => {
      if (c.registeredArguments[0]?.name() === 'kind' && !findKind(String(values[0]))) throw new Error(`unknown kind "${values[0]}"`);
    });
  }
  try {
    await program.parseAsync(['node', 'edgeplane', ...args]);
    return undefined;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version') return undefined;
    return `${(err as Error).message}\n${out}`;
  }
}

const paths = [[], ...commandPaths(await buildProgram({ io: defaultIo(), exitCode: 0 }))];
const examples: { where: string; example: string; argv: string[] }[] = [];
for (const path of paths) {
  const help = (await runCli([...path, '--help'])).stdout;
  for (const example of examplesIn(help)) {
    for (const argv of shellCommands(example)) {
      if (argv[0] === 'edgeplane') examples.push({ where: ['edgeplane', ...path].join(' '), example, argv: argv.slice(1) });
    }
  }
}

describe('--help examples', () => {
  it('finds the examples of every command', () => {
    expect(examples.length).toBeGreaterThan(80);
    expect(new Set(examples.map((e) => e.where)).size).toBeGreaterThan(40);
  });

  it('filters hosts by site with the field selector: a site from a token or the simulator is spec.site, not a label', () => {
    expect(examples.filter((e) => /(-l|--selector)[ =]'?site\b/.test(e.example)).map((e) => e.example)).toEqual([]);
  });

  it.each(examples.map((e) => [e.where, e.example, e.argv] as const))('%s: $ %s parses', async (_where, _example, argv) => {
    expect(await parseOnly(argv)).toBeUndefined();
  });

  it('parseOnly fails on unknown commands and options, missing required options and bad values', async () => {
    expect(await parseOnly(['gett', 'hosts'])).toMatch(/unknown command 'gett'/);
    expect(await parseOnly(['get', 'hosts', '--colour'])).toMatch(/unknown option '--colour'/);
    expect(await parseOnly(['wait', 'cluster', 'shop-1'])).toMatch(/required option '--for <condition>' not specified/);
    expect(await parseOnly(['wait', 'cluster', 'shop-1', '--for', 'phase=Running', '--timeout', '10'])).toMatch(/not a duration/);
    expect(await parseOnly(['describe', 'host', 'a', 'b'])).toMatch(/too many arguments/);
    expect(await parseOnly(['get', 'apitokenz'])).toMatch(/unknown kind "apitokenz"/);
  });

  it('splits shell lines into commands', () => {
    expect(shellCommands('edgeplane login --token "$(cat .edgeplane/admin-token)" # why')).toEqual([
      ['cat', '.edgeplane/admin-token'],
      ['edgeplane', 'login', '--token', '<substitution>'],
    ]);
    expect(shellCommands(`edgeplane get cluster a -o yaml | sed "s/x/y/" > a.yaml && KUBECONFIG=~/k kubectl get nodes 2>/dev/null`)).toEqual([
      ['edgeplane', 'get', 'cluster', 'a', '-o', 'yaml'],
      ['sed', 's/x/y/'],
      ['kubectl', 'get', 'nodes'],
    ]);
    expect(shellCommands(`source <(edgeplane completion bash)`)).toEqual([
      ['edgeplane', 'completion', 'bash'],
      ['source', '<substitution>'],
    ]);
    expect(shellCommands(`edgeplane image build --health-check '{"name":"api"}'`)).toEqual([
      ['edgeplane', 'image', 'build', '--health-check', '{"name":"api"}'],
    ]);
  });
});
