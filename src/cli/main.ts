// `amphora`: the operator CLI. Parses the command line, finds the agent(s)
// and credentials, runs the subcommand on every agent (fan-out) and prints
// the result for humans or, with --json, for scripts.
import { parseArgs } from "node:util";
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import {
  createAmphoraClient,
  fanOut,
  readCredentials,
  toAmphoraError,
  AmphoraError,
  type AmphoraClient,
} from "../driver/index.js";
import { COMMANDS, commandGroups, type Command, type OptSpec, type OptValues } from "./commands.js";
import { EXIT, EXIT_CODES_HELP, UsageError, exitCodeFor } from "./exit-codes.js";
import { paint, stringifyJson, type Style } from "./output.js";
import { defaultConfigPath, resolveSettings, type SettingFlags } from "./settings.js";

const VERSION = "0.1.0";

const GLOBAL_OPTIONS: Record<string, OptSpec> = {
  agent: { type: "string", multiple: true, short: "a", value: "URL", help: "agent URL, e.g. https://192.0.2.10:9443 (repeat for several amphorae) [AMPHORA_AGENT, comma-separated]" },
  ca: { type: "string", value: "FILE", help: "CA that signed the agent's certificate [AMPHORA_CA]" },
  cert: { type: "string", value: "FILE", help: "client certificate [AMPHORA_CERT]" },
  key: { type: "string", value: "FILE", help: "client private key [AMPHORA_KEY]" },
  "dev-state": { type: "string", value: "DIR", help: "use the dev PKI of an agent run with --dev --state-dir DIR [AMPHORA_DEV_STATE]" },
  "server-name": { type: "string", value: "NAME", help: "name to check the agent's certificate against, e.g. the amphora id [AMPHORA_SERVER_NAME]" },
  protocol: { type: "string", value: "P", help: "connect (default), grpc or grpc-web [AMPHORA_PROTOCOL]" },
  timeout: { type: "string", value: "MS", help: "deadline per call, retries included (default: 10000 reads, 30000 changes, 60000 lb start/stop/reload/delete) [AMPHORA_TIMEOUT]" },
  concurrency: { type: "string", value: "N", help: "with several agents: how many at once (default 8)" },
  "cli-config": { type: "string", value: "FILE", help: "CLI config file [AMPHORA_CONFIG]" },
  profile: { type: "string", value: "NAME", help: "profile of the config file [AMPHORA_PROFILE]" },
  json: { type: "boolean", help: "machine-readable JSON output" },
  "no-color": { type: "boolean", help: "no colours (also NO_COLOR)" },
  help: { type: "boolean", short: "h", help: "show help" },
  version: { type: "boolean", help: "print the CLI version" },
};

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

function optionLines(opts: Record<string, OptSpec>): string {
  const rows = Object.entries(opts).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`,
    o.help,
  ]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`).join("\n") + "\n";
}

const usageOf = (c: Command) => `amphora ${c.path.join(" ")}${c.args.length ? " " + c.args.join(" ") : ""}${c.options ? " [options]" : ""}`;

function mainHelp(env: NodeJS.ProcessEnv): string {
  const lines = COMMANDS.map((c) => [`${c.path.join(" ")}${c.args.length ? " " + c.args.join(" ") : ""}`, c.summary]);
  const w = Math.max(...lines.map((l) => l[0]!.length));
  return (
    `usage: amphora [global options] COMMAND [ARGS] [options]\n\n` +
    `Drives amphora agents: load balancers (haproxy), certificates, network, VRRP, stats.\n\n` +
    `commands:\n${lines.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`).join("\n")}\n\n` +
    `global options:\n${optionLines(GLOBAL_OPTIONS)}\n` +
    `Settings come from flags, then AMPHORA_* environment variables, then the config\n` +
    `file (${defaultConfigPath(env)} unless --cli-config/AMPHORA_CONFIG), e.g.\n` +
    `  {"agent": "https://192.0.2.10:9443", "ca": "ca.pem", "cert": "client.pem", "key": "client-key.pem",\n` +
    `   "profiles": {"dev": {"agent": "https://127.0.0.1:9443", "devState": "/path/to/state"}}}\n` +
    `(paths relative to the file). The agent defaults to https://127.0.0.1:9443.\n` +
    `With several --agent, the command runs on each and reports each result.\n\n` +
    `'amphora COMMAND --help' describes a command.\n\n${EXIT_CODES_HELP}`
  );
}

function commandHelp(c: Command): string {
  return (
    `usage: ${usageOf(c)}\n\n${c.summary}\n${c.help ? `\n${c.help}\n` : ""}` +
    (c.options ? `\noptions:\n${optionLines(c.options)}` : "") +
    `\nglobal options: --agent URL --ca FILE --cert FILE --key FILE --dev-state DIR --json ... (see amphora --help)\n`
  );
}

function groupHelp(group: string, cmds: Command[]): string {
  const w = Math.max(...cmds.map((c) => usageOf(c).length));
  return `commands of 'amphora ${group}':\n${cmds.map((c) => `  ${usageOf(c).padEnd(w)}  ${c.summary}`).join("\n")}\n\n'amphora ${group} SUBCOMMAND --help' for details.\n`;
}

/** Longest command path that prefixes the positionals. */
function findCommand(positionals: string[]): Command | undefined {
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

interface AgentResult {
  agent: string;
  ok: boolean;
  value?: { json: unknown; text: string };
  error?: AmphoraError;
}

function errorText(e: AmphoraError, st: Style, what: string): string {
  const lines = [`${paint("error", "red", st)}: ${what} failed: ${e.rawMessage} [${e.codeName}]`];
  if (e.errorDetails) lines.push(`  details: ${e.errorDetails.trimEnd().replace(/\n/g, "\n    ")}`);
  if (e.reason) lines.push(`  reason: ${e.reason}`);
  if (e.hint) lines.push(`  hint: ${e.hint}`);
  return lines.join("\n") + "\n";
}

/** Runs the CLI; resolves to the exit code. Never throws. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const colorAllowed = !io.env.NO_COLOR && !argv.includes("--no-color");
  const errStyle: Style = { color: colorAllowed && io.stderr.isTTY === true };
  let command: Command | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: allOptions() as never, allowPositionals: true, strict: true });
    } catch (e) {
      throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
    }
    const opts = parsed.values as OptValues;
    const positionals = parsed.positionals;
    if (opts.version) {
      io.stdout.write(`${VERSION}\n`);
      return EXIT.OK;
    }
    command = findCommand(positionals);
    if (!command) {
      const group = positionals[0] && commandGroups().get(positionals[0]);
      // Asked for: stdout and 0. Not asked for (nothing to run): stderr and 2.
      if (group && (opts.help || positionals.length === 1)) {
        (opts.help ? io.stdout : io.stderr).write(groupHelp(positionals[0]!, group));
        return opts.help ? EXIT.OK : EXIT.USAGE;
      }
      if (opts.help || !positionals.length) {
        (opts.help ? io.stdout : io.stderr).write(mainHelp(io.env));
        return opts.help ? EXIT.OK : EXIT.USAGE;
      }
      throw new UsageError(
        group ? `unknown subcommand '${positionals.slice(0, 2).join(" ")}'` : `unknown command '${positionals[0]}'`,
        group ? groupHelp(positionals[0]!, group) : "run 'amphora --help' for the list of commands\n",
      );
    }
    const cmd = command;
    if (opts.help) {
      io.stdout.write(commandHelp(cmd));
      return EXIT.OK;
    }
    for (const name of Object.keys(opts)) {
      if (!(name in GLOBAL_OPTIONS) && !(name in (cmd.options ?? {}))) throw new UsageError(`'amphora ${cmd.path.join(" ")}' has no option --${name}`, commandHelp(cmd));
    }
    const args = positionals.slice(cmd.path.length);
    const required = cmd.args.filter((a) => !a.endsWith("?")).length;
    if (args.length < required) throw new UsageError(`missing ${cmd.args.slice(args.length).join(" ")}`, `usage: ${usageOf(cmd)}\n`);
    if (args.length > cmd.args.length) throw new UsageError(`unexpected argument '${args[cmd.args.length]}'`, `usage: ${usageOf(cmd)}\n`);

    const settings = resolveSettings(opts as SettingFlags, io.env);
    if (cmd.single && settings.agents.length > 1) throw new UsageError(`'amphora ${cmd.path.join(" ")}' works with one agent at a time; give one --agent`);
    for (const k of ["ca", "cert", "key"] as const) {
      if (!settings[k]) throw new UsageError(`no --${k}: give --${k} FILE, set AMPHORA_${k.toUpperCase()}, put "${k}" in the config file, or use --dev-state DIR`);
    }
    let creds;
    try {
      creds = readCredentials({ ca: settings.ca!, cert: settings.cert!, key: settings.key! });
    } catch (e) {
      throw new UsageError(`${(e as Error).message} (from ${Object.values(settings.sources).filter(Boolean).join(", ") || "defaults"})`);
    }
    const input = cmd.prepare ? cmd.prepare(args, opts) : undefined;
    const concurrency = opts.concurrency === undefined ? 8 : Number(opts.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`--concurrency must be a whole number >= 1`);

    const json = opts.json === true;
    const style: Style = { color: colorAllowed && !json && io.stdout.isTTY === true };
    const ac = new AbortController();
    io.signal?.addEventListener("abort", () => ac.abort(), { once: true });
    const clients = new Map<string, AmphoraClient>();
    let results: AgentResult[];
    try {
      for (const url of settings.agents) {
        try {
          clients.set(url, createAmphoraClient({ baseUrl: url, ...creds, protocol: settings.protocol, timeoutMs: settings.timeoutMs, serverName: settings.serverName }));
        } catch (e) {
          throw new UsageError(`--agent ${url}: ${(e as Error).message}`);
        }
      }
      const outcomes = await fanOut(
        settings.agents,
        (url) => cmd.run({ client: clients.get(url)!, args, opts, input, signal: ac.signal, style, stdout: io.stdout, stderr: io.stderr, json }),
        { concurrency, signal: ac.signal, describe: (t) => String(t) },
      );
      results = outcomes.map((r) => (r.ok ? { agent: r.target, ok: true, value: r.value } : { agent: r.target, ok: false, error: r.error }));
    } finally {
      for (const c of clients.values()) c.close();
    }
    if (cmd.path[0] === "watch") {
      const r = results[0]!;
      if (r.ok) return EXIT.OK;
      if (ac.signal.aborted) return EXIT.OK;
    }
    return report(cmd, results, json, style, errStyle, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`amphora: ${e.message}\n${e.usage ? "\n" + e.usage : ""}`);
      return EXIT.USAGE;
    }
    if (e instanceof AmphoraError) {
      io.stderr.write(errorText(e, errStyle, command ? command.path.join(" ") : "command"));
      return exitCodeFor(e);
    }
    io.stderr.write(`amphora: unexpected error: ${(e as Error)?.message ?? String(e)}\n`);
    return EXIT.INTERNAL;
  }
}

function report(cmd: Command, results: AgentResult[], json: boolean, style: Style, errStyle: Style, io: Io): number {
  const what = cmd.path.join(" ");
  const failures = results.filter((r) => !r.ok);
  if (results.length === 1) {
    const r = results[0]!;
    if (r.ok) {
      if (json) io.stdout.write(stringifyJson(r.value!.json) + "\n");
      else io.stdout.write(r.value!.text);
      return EXIT.OK;
    }
    const err = toAmphoraError(r.error);
    if (json) io.stderr.write(stringifyJson({ error: err.toJSON() }) + "\n");
    else io.stderr.write(errorText(err, errStyle, what));
    return exitCodeFor(err);
  }
  if (json) {
    io.stdout.write(
      stringifyJson(results.map((r) => (r.ok ? { agent: r.agent, ok: true, result: r.value!.json } : { agent: r.agent, ok: false, error: r.error!.toJSON() }))) + "\n",
    );
  } else {
    for (const r of results) {
      io.stdout.write(`${paint(`== ${r.agent}`, "bold", style)} ${r.ok ? paint("ok", "green", style) : paint("FAILED", "red", style)}\n`);
      if (r.ok) io.stdout.write(r.value!.text);
      else io.stdout.write(errorText(r.error!, style, what));
      io.stdout.write("\n");
    }
  }
  if (!failures.length) return EXIT.OK;
  if (failures.length < results.length) return EXIT.PARTIAL;
  return exitCodeFor(failures[0]!.error!);
}

/** The process entry: real stdio, exit code, Ctrl-C handling. */
export function main(): void {
  const ac = new AbortController();
  let interrupted = 0;
  const onSignal = () => {
    // The first Ctrl-C ends a watch (or call) cleanly; a second one exits at once.
    if (interrupted++) process.exit(130);
    ac.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // `amphora watch | head`: the reader went away; that is a normal end.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(EXIT.OK);
    process.stderr.write(`amphora: cannot write output: ${e.message}\n`);
    process.exit(EXIT.INTERNAL);
  });
  runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: ac.signal }).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`amphora: unexpected error: ${(e as Error).message}\n`);
      process.exitCode = EXIT.INTERNAL;
    },
  );
}

// `node --import tsx src/cli/main.ts ...` runs it; bin/amphora.js calls main().
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) main();
