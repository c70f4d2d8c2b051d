// `amphora`: the operator CLI. Parses the command line (parse.ts), finds
// the agent(s) and credentials (settings.ts), runs the subcommand
// (commands/) on every agent (fan-out) and prints the result for humans or,
// with --json, for scripts.
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
import { PartialFailure, type Command, type Output } from "./command.js";
import { EXIT, UsageError, exitCodeFor } from "./exit-codes.js";
import { cliHint } from "./hints.js";
import { paint, stringifyJson, type Style } from "./output.js";
import { parseCommandLine } from "./parse.js";
import { resolveSettings, type SettingFlags } from "./settings.js";
import { traceInterceptor } from "./trace.js";

const VERSION = "0.1.0";

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

interface AgentResult {
  agent: string;
  ok: boolean;
  value?: Output;
  error?: AmphoraError;
  /** What a command that failed half-way had done (see PartialFailure). */
  done?: Output;
}

function errorText(e: AmphoraError, st: Style, what: string): string {
  const lines = [`${paint("error", "red", st)}: ${what} failed: ${e.rawMessage} [${e.codeName}]`];
  if (e.errorDetails) lines.push(`  details: ${e.errorDetails.trimEnd().replace(/\n/g, "\n    ")}`);
  if (e.reason) lines.push(`  reason: ${e.reason}`);
  const hint = cliHint(e);
  if (hint) lines.push(`  hint: ${hint}`);
  return lines.join("\n") + "\n";
}

/** The error for --json: the driver's fields, with the hint in the CLI's words. */
function errorJson(e: AmphoraError): Record<string, string> {
  const j = e.toJSON();
  const hint = cliHint(e);
  if (hint) j.hint = hint;
  return j;
}

/** Runs the CLI; resolves to the exit code. Never throws. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const colorAllowed = !io.env.NO_COLOR && !argv.includes("--no-color");
  const errStyle: Style = { color: colorAllowed && io.stderr.isTTY === true };
  let command: Command | undefined;
  try {
    const parsed = parseCommandLine(argv, io.env);
    if (parsed.kind === "version") {
      io.stdout.write(`${VERSION}\n`);
      return EXIT.OK;
    }
    if (parsed.kind === "help") {
      // Asked for: stdout and 0. Not asked for (nothing to run): stderr and 2.
      (parsed.asked ? io.stdout : io.stderr).write(parsed.text);
      return parsed.asked ? EXIT.OK : EXIT.USAGE;
    }
    const { command: cmd, args, opts } = parsed;
    command = cmd;
    if (cmd.local) {
      io.stdout.write(cmd.local(args, opts));
      return EXIT.OK;
    }

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
    const trace = opts.verbose === true;
    const ac = new AbortController();
    io.signal?.addEventListener("abort", () => ac.abort(), { once: true });
    const clients = new Map<string, AmphoraClient>();
    let results: AgentResult[];
    try {
      for (const url of settings.agents) {
        const several = settings.agents.length > 1;
        const interceptors = trace
          ? [traceInterceptor((line) => io.stderr.write(`${paint(`${several ? `[${url}] ` : ""}${line}`, "dim", errStyle)}\n`), settings.protocol)]
          : [];
        try {
          clients.set(url, createAmphoraClient({ baseUrl: url, ...creds, protocol: settings.protocol, timeoutMs: settings.timeoutMs, serverName: settings.serverName, interceptors }));
        } catch (e) {
          throw new UsageError(`--agent ${url}: ${(e as Error).message}`);
        }
      }
      const outcomes = await fanOut(
        settings.agents,
        (url) =>
          cmd
            .run({ client: clients.get(url)!, args, opts, input, signal: ac.signal, style, stdout: io.stdout, stderr: io.stderr, json })
            // Kept apart from other errors: what was done is printed too.
            .catch((e: unknown) => (e instanceof PartialFailure ? e : Promise.reject(e))),
        { concurrency, signal: ac.signal, describe: (t) => String(t) },
      );
      results = outcomes.map((r): AgentResult => {
        if (!r.ok) return { agent: r.target, ok: false, error: r.error };
        if (r.value instanceof PartialFailure) return { agent: r.target, ok: false, error: toAmphoraError(r.value.error, { agent: r.target }), done: r.value.done };
        return { agent: r.target, ok: true, value: r.value };
      });
    } finally {
      for (const c of clients.values()) c.close();
    }
    // Streams (watch, events) printed as they went; Ctrl-C is their normal end.
    if (cmd.path[0] === "watch" || cmd.path[0] === "events") {
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
    // What was done before the failure goes where a success would have.
    if (r.done) io.stdout.write(json ? stringifyJson(r.done.json) + "\n" : r.done.text);
    const err = toAmphoraError(r.error);
    if (json) io.stderr.write(stringifyJson({ error: errorJson(err) }) + "\n");
    else io.stderr.write(errorText(err, errStyle, what));
    return exitCodeFor(err);
  }
  if (json) {
    io.stdout.write(
      stringifyJson(
        results.map((r) =>
          r.ok ? { agent: r.agent, ok: true, result: r.value!.json } : { agent: r.agent, ok: false, error: errorJson(r.error!), ...(r.done ? { result: r.done.json } : {}) },
        ),
      ) + "\n",
    );
  } else {
    for (const r of results) {
      io.stdout.write(`${paint(`== ${r.agent}`, "bold", style)} ${r.ok ? paint("ok", "green", style) : paint("FAILED", "red", style)}\n`);
      if (r.ok) io.stdout.write(r.value!.text);
      else io.stdout.write((r.done?.text ?? "") + errorText(r.error!, style, what));
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
