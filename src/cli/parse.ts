// The command line: which command, its arguments and options, or a help
// or version request. Pure (no I/O): unit-tested beside the end-to-end
// tests. Mistakes are UsageErrors with a usage hint and, for a mistyped
// word, the closest known ones.
import { parseArgs } from "node:util";
import type { Command, OptSpec, OptValues } from "./command.js";
import { COMMANDS, commandGroups } from "./commands/index.js";
import { UsageError } from "./exit-codes.js";
import { GLOBAL_OPTIONS } from "./global-options.js";
import { commandHelp, groupHelp, mainHelp, usageOf } from "./help.js";
import { didYouMean } from "./suggest.js";

export type Parsed =
  | { kind: "version" }
  /** Help asked for (stdout, exit 0) or nothing to run (stderr, exit 2). */
  | { kind: "help"; text: string; asked: boolean }
  | { kind: "run"; command: Command; args: string[]; opts: OptValues };

/** Longest command path that prefixes the positionals. */
export function findCommand(positionals: string[]): Command | undefined {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.path.length <= positionals.length && c.path.every((w, i) => positionals[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best;
}

function allOptions(): Record<string, OptSpec> {
  const all: Record<string, OptSpec> = { ...GLOBAL_OPTIONS };
  for (const c of COMMANDS) Object.assign(all, c.options ?? {});
  return all;
}

export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv = {}): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: allOptions() as never, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(msg)?.[1];
    throw new UsageError(msg, unknown?.startsWith("--") ? didYouMean(unknown.slice(2), Object.keys(allOptions()), (s) => `--${s}`) : "");
  }
  const opts = parsed.values as OptValues;
  const positionals = parsed.positionals;
  if (opts.version) return { kind: "version" };
  const command = findCommand(positionals);
  if (!command) {
    const groups = commandGroups();
    const group = positionals[0] ? groups.get(positionals[0]) : undefined;
    if (group && (opts.help || positionals.length === 1)) return { kind: "help", text: groupHelp(positionals[0]!, group), asked: opts.help === true };
    if (opts.help || !positionals.length) return { kind: "help", text: mainHelp(env), asked: opts.help === true };
    if (group) {
      const subs = group.map((c) => c.path[1]).filter((s): s is string => !!s);
      throw new UsageError(`unknown subcommand '${positionals.slice(0, 2).join(" ")}'`, didYouMean(positionals[1]!, subs, (s) => `${positionals[0]} ${s}`) + "\n" + groupHelp(positionals[0]!, group));
    }
    throw new UsageError(`unknown command '${positionals[0]}'`, didYouMean(positionals[0]!, groups.keys(), (s) => s) + "run 'amphora --help' for the list of commands\n");
  }
  if (opts.help) return { kind: "help", text: commandHelp(command), asked: true };
  const own = command.options ?? {};
  for (const name of Object.keys(opts)) {
    if (!(name in GLOBAL_OPTIONS) && !(name in own)) {
      throw new UsageError(`'amphora ${command.path.join(" ")}' has no option --${name}`, didYouMean(name, Object.keys(own), (s) => `--${s}`) + "\n" + commandHelp(command));
    }
  }
  const args = positionals.slice(command.path.length);
  const required = command.args.filter((a) => !a.endsWith("?")).length;
  if (args.length < required) throw new UsageError(`missing ${command.args.slice(args.length).join(" ")}`, `usage: ${usageOf(command)}\n`);
  if (args.length > command.args.length) {
    // `amphora lb stat X`: a mistyped subcommand looks like an argument.
    const sub = commandGroups().get(command.path[0]!)?.map((c) => c.path[command.path.length]).filter((s): s is string => !!s) ?? [];
    const hint = command.path.length === 1 ? didYouMean(args[0]!, sub, (s) => `${command.path[0]} ${s}`) : "";
    throw new UsageError(`unexpected argument '${args[command.args.length]}'`, hint + `usage: ${usageOf(command)}\n`);
  }
  return { kind: "run", command, args, opts };
}
