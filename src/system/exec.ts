// The one wrapper for running programs: argument arrays (never a shell
// string), a timeout, and the exit code, stdout and stderr kept for errors.
import { execa } from "execa";
import { failed } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Run inside this network namespace (`ip netns exec NS ...`). */
  netns?: string;
  logger?: Logger;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** The program was killed because it outran `timeoutMs` (exitCode is then 124). */
  timedOut?: boolean;
  /** The signal that ended it, if one did (a timeout's SIGTERM included). */
  signal?: string;
}

/** Runs a program and returns its result whatever the exit code. */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = opts.netns ? ["ip", ["netns", "exec", opts.netns, file, ...args]] : [file, [...args]];
  const started = performance.now();
  const r = await execa(cmd, argv, {
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    input: opts.input,
    cwd: opts.cwd,
    env: opts.env,
    stripFinalNewline: true,
  });
  const durationMs = Math.round((performance.now() - started) * 10) / 10;
  const exitCode = r.exitCode ?? (r.timedOut ? 124 : 1);
  const log = opts.logger ?? silentLogger;
  log.debug({ cmd, args: argv, exitCode, durationMs }, "ran program");
  if (r.failed && r.exitCode === undefined) {
    // Could not start, or killed by timeout/signal.
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 30_000} ms` : (r.signal ? `killed by ${r.signal}` : r.shortMessage);
    return {
      exitCode, stdout: String(r.stdout ?? ""), stderr: `${String(r.stderr ?? "")}\n${why}`.trim(), durationMs,
      timedOut: r.timedOut || undefined, signal: r.signal ?? undefined,
    };
  }
  return { exitCode, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? ""), durationMs };
}

/** Runs a program and throws a `failed` DomainError unless it exits 0. */
export async function runChecked(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) {
    throw failed(`${file} ${args.join(" ")} exited with ${r.exitCode}`, (r.stderr || r.stdout).trim(), "COMMAND_FAILED");
  }
  return r;
}
