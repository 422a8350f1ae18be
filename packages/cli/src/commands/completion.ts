import { KIND_TABLE } from '@edgeplane/protocol/kind-table';
import { Argument, type Command } from 'commander';
import type { ResourceList } from '../api-client.js';
import { buildProgram, COMMAND_MODULES } from '../program.js';
import { type CommandContext, clientFor, examples } from './common.js';

const SHELLS = ['bash', 'zsh', 'fish'] as const;
type Shell = (typeof SHELLS)[number];

/** How long `__complete` waits for the API before it offers no names: a prompt must not hang. */
const NAMES_TIMEOUT_MS = 1500;

/** Arguments whose values are names of a kind: `<host>` of shell/logs/exec, `<cluster>` of kubeconfig/vm. */
const NAMED_ARGS: Record<string, string> = { host: 'edgehosts', cluster: 'clusters' };
/** Arguments that name a resource of the kind given in an earlier `<kind>` argument. */
const NAME_ARGS = new Set(['name', 'names']);

export function registerCompletion(program: Command, ctx: CommandContext): void {
  program
    .command('completion')
    .summary('print a shell completion script (bash, zsh, fish)')
    .description(
      'Print a script that completes edgeplane commands, options, kinds and resource names. The script ' +
        'calls `edgeplane __complete` for each completion; resource names come from the API of the ' +
        'current context (nothing is offered when the server cannot be reached within 1.5 s).',
    )
    .addArgument(new Argument('<shell>', 'the shell to complete in').choices([...SHELLS]))
    .addHelpText(
      'after',
      examples(
        'edgeplane completion bash > /etc/bash_completion.d/edgeplane',
        'source <(edgeplane completion bash)',
        'source <(edgeplane completion zsh)',
        'edgeplane completion fish > ~/.config/fish/completions/edgeplane.fish',
      ),
    )
    .action((shell: Shell) => {
      ctx.io.stdout.write(SCRIPTS[shell]);
    });

  program
    .command('__complete', { hidden: true })
    .description('print completions for the words typed so far (the last one is the word being completed)')
    .argument('[words...]')
    .helpOption(false)
    .allowUnknownOption()
    .action(async (words: string[] = []) => {
      const candidates = await complete(words.length ? words : [''], ctx).catch(() => []);
      for (const c of candidates) ctx.io.stdout.write(`${c}\n`);
    });
}

/**
 * Completions for `edgeplane <words>`, where the last word is the one being typed: commands and
 * subcommands, options (when it starts with -), kinds for a `<kind>` argument, and names for a
 * name argument (from the API). Never throws for a bad server: completion offers nothing then.
 */
export async function complete(words: string[], ctx: CommandContext): Promise<string[]> {
  const current = words[words.length - 1] ?? '';
  const typed = words.slice(0, -1);
  const starts = (list: Iterable<string>) => [...new Set(list)].filter((c) => c.startsWith(current));
  const commandWord = typed.find((w) => !w.startsWith('-'));
  if (commandWord === undefined) {
    return starts(current.startsWith('-') ? ['--help', '--version'] : COMMAND_MODULES.flatMap((m) => m.names).filter((n) => !n.startsWith('__')));
  }
  // Only the typed command's module: completing `get` does not load the server or the agent.
  let cmd: Command = await buildProgram({ io: ctx.io, exitCode: 0 }, [commandWord]);
  const operands: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < typed.length; i++) {
    const w = typed[i]!;
    if (w.startsWith('-')) {
      const opt = cmd.options.find((o) => o.long === w.split('=')[0] || o.short === w);
      // An option that takes a value consumes the next word (unless given as --opt=value).
      if (opt && (opt.required || opt.optional) && !w.includes('=')) flags[opt.attributeName()] = typed[++i] ?? '';
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub && !operands.length) cmd = sub;
    else if (cmd.parent) operands.push(w);
  }
  if (current.startsWith('-')) return starts(cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)));
  const previous = typed[typed.length - 1];
  const previousOption = previous?.startsWith('-') ? cmd.options.find((o) => o.long === previous || o.short === previous) : undefined;
  if (previousOption && (previousOption.required || previousOption.optional)) return starts(previousOption.argChoices ?? []);
  const subcommands = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden && c.name() !== 'help').map((c) => c.name());
  if (subcommands.length && !operands.length) return starts(subcommands);
  const args = cmd.registeredArguments;
  const arg = args[Math.min(operands.length, args.length - 1)];
  if (!arg || (operands.length >= args.length && !arg.variadic)) return [];
  const argName = arg.name();
  if (argName === 'kind') return starts(KIND_TABLE.flatMap((k) => [k.plural, k.singular, ...k.shortNames]));
  if (arg.argChoices) return starts(arg.argChoices);
  const kindIndex = args.findIndex((a) => a.name() === 'kind');
  const kindWord = kindIndex >= 0 && kindIndex < operands.length ? operands[kindIndex] : undefined;
  const kind = kindWord ? KIND_TABLE.find((k) => [k.plural, k.singular, k.kind.toLowerCase(), ...k.shortNames].includes(kindWord.toLowerCase())) : undefined;
  const plural = NAME_ARGS.has(argName) ? kind?.plural : NAMED_ARGS[argName];
  if (!plural) return [];
  return starts(await names(plural, flags, ctx));
}

/** Names of the resources of a kind, from the API of the configured server; none on any error. */
async function names(plural: string, flags: Record<string, string>, ctx: CommandContext): Promise<string[]> {
  try {
    const client = clientFor(flags, ctx.io);
    const list = await client.request<ResourceList>('GET', plural, { query: { limit: 500 }, signal: AbortSignal.timeout(NAMES_TIMEOUT_MS) });
    return list.items.map((r) => r.metadata.name);
  } catch {
    return [];
  }
}

const BASH = `# edgeplane completion for bash. Load it with: source <(edgeplane completion bash)
_edgeplane_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local IFS=$'\\n'
  local candidates
  candidates="$(edgeplane __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)" || return 0
  COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}
complete -o default -F _edgeplane_complete edgeplane
`;

const ZSH = `#compdef edgeplane
# edgeplane completion for zsh. Load it with: source <(edgeplane completion zsh) (after compinit),
# or save it as _edgeplane in a directory of $fpath.
_edgeplane() {
  local -a candidates
  candidates=(\${(f)"$(edgeplane __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)"})
  (( \${#candidates} )) && compadd -- "\${candidates[@]}"
}
if (( $+functions[compdef] )); then
  compdef _edgeplane edgeplane
fi
`;

const FISH = `# edgeplane completion for fish. Save it as ~/.config/fish/completions/edgeplane.fish
function __edgeplane_complete
    set -l typed (commandline -opc)
    set -l current (commandline -ct)
    edgeplane __complete $typed[2..-1] "$current" 2>/dev/null
end
complete -c edgeplane -f -a '(__edgeplane_complete)'
`;

const SCRIPTS: Record<Shell, string> = { bash: BASH, zsh: ZSH, fish: FISH };
