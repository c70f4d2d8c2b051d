// The one wrapper for running programs: argument arrays (never a shell
// string), a timeout, and the exit code, stdout and stderr kept for errors.
//
// Each program runs in a process group of its own (a new session), so a
// timeout or an abort ends everything it started, not only the direct child:
// a wrapper script (`haproxy_cmd`) that hangs in a grandchild used to keep
// the call open forever and left the grandchild behind. The call also never
// waits for inherited stdio to close once the direct child has exited: a
// descendant that keeps the pipes open (on purpose or not) cannot hold the
// answer. Programs that daemonize on purpose (haproxy -W -D, keepalived -D)
// call setsid() themselves and so leave this group; a normal exit never
// signals the group, so nothing that detached itself is touched.
// Spawned with execa, but its promise is never awaited: execa settles only
// after every stdio stream has ended, which is exactly what a descendant
// holding the pipes prevents. The call follows the direct child's "exit"
// instead and drains the pipes itself (below).
import type { execa as Execa } from "execa";
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { failed } from "../errors.js";
import { FDS_PER_PROGRAM, fdsLeft, programSlots } from "./program-slots.js";
import { silentLogger, type Logger } from "../log.js";

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Run inside this network namespace (`ip netns exec NS ...`). */
  netns?: string;
  logger?: Logger;
  /** Ends the program (its whole process group) like a timeout does. */
  signal?: AbortSignal;
  /**
   * Most bytes kept of stdout and of stderr (default 4 MiB); `outputTruncated`
   * says when more came. A validator's output about a hostile input
   * (keepalived -t complains about every line) is kept small.
   */
  maxOutputBytes?: number;
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
  /** The program wrote more than `maxOutputBytes` on stdout or stderr; they hold the first bytes. */
  outputTruncated?: boolean;
}

/** How long a timed-out process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 2000;
/** After the direct child exits: how long its output may keep arriving before the pipes are dropped. */
const DRAIN_IDLE_MS = 100;
/** ... and at most this long in all, however chatty a descendant is. */
const DRAIN_MAX_MS = 1000;
/** After SIGKILL: how long to wait for the group to be gone (a process in uninterruptible sleep dies late). */
const REAP_WAIT_MS = 2000;
/** Output kept per stream: a runaway program cannot fill the agent's memory. */
const MAX_OUTPUT = 4 * 1024 * 1024;

let execaModule: Promise<typeof import("execa")> | undefined;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Signals every process of group `pgid`; false when the group has no process left. */
function signalGroup(pgid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw e;
  }
}

/**
 * Whether group `pgid` still has a live process. Zombies do not count: an
 * orphan's zombie waits for pid 1 to reap it, which some init processes do
 * late or never, yet it holds nothing.
 */
function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[2]) === pgid && f[0] !== "Z" && f[0] !== "X") return true;
  }
  return false;
}

async function groupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

/** SIGTERM to the group, SIGKILL to whatever is left after `KILL_GRACE_MS`. */
async function endGroup(pgid: number, log: Logger): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  if (await groupGone(pgid, KILL_GRACE_MS)) return;
  signalGroup(pgid, "SIGKILL");
  if (!(await groupGone(pgid, REAP_WAIT_MS))) log.warn({ pgid }, "process group still has live processes after SIGKILL");
}

interface Collected {
  text(): string;
  truncated: boolean;
}

function collect(stream: NodeJS.ReadableStream | null, limit = MAX_OUTPUT): Collected {
  const chunks: Buffer[] = [];
  let size = 0;
  const got: Collected = { text: () => Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, ""), truncated: false };
  stream?.on("data", (c: Buffer) => {
    if (size >= limit) {
      got.truncated = true;
      return;
    }
    const keep = c.length > limit - size ? c.subarray(0, limit - size) : c;
    if (keep.length < c.length) got.truncated = true;
    chunks.push(keep);
    size += keep.length;
  });
  stream?.on("error", () => {});
  return got;
}

/**
 * Runs a program and returns its result whatever the exit code. At most
 * `programSlots.max` run at once (program-slots.ts), and none starts when
 * the agent is short of file descriptors.
 */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (fdsLeft() < FDS_PER_PROGRAM) {
    return { exitCode: 1, stdout: "", stderr: `could not start ${file}: too many open files`, durationMs: 0 };
  }
  return programSlots.run(() => runNow(file, args, opts));
}

async function runNow(file: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const [cmd, argv] = opts.netns ? ["ip", ["netns", "exec", opts.netns, file, ...args]] : [file, [...args]];
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const log = opts.logger ?? silentLogger;
  const started = performance.now();
  // execa loads with the first program run: an idle agent does not need it.
  const { execa } = await (execaModule ??= import("execa"));
  let child: ReturnType<typeof Execa>;
  try {
    child = execa(cmd, argv, {
    cwd: opts.cwd,
    env: opts.env,
    // A session and process group of its own: the group is what a timeout ends.
    detached: true,
    // Output is collected here (bounded), timeouts end the whole group here:
    // execa's own buffering, timeout and kill-on-exit are off.
    buffer: false,
    reject: false,
    cleanup: false,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    });
  } catch (e) {
    // execa throws instead of answering when the spawn itself fails
    // (EMFILE: "subprocess.stdio is not iterable").
    return { exitCode: 1, stdout: "", stderr: `could not start ${cmd}: ${(e as Error).message}`, durationMs: Math.round((performance.now() - started) * 10) / 10 };
  }
  // Settles when every pipe has closed, maybe never (see above): not awaited.
  child.catch(() => {});
  const out = collect(child.stdout, opts.maxOutputBytes);
  const err = collect(child.stderr, opts.maxOutputBytes);
  child.stdin?.on("error", () => {}); // a program that does not read its input
  child.stdin?.end(opts.input ?? "");

  let why: "timeout" | "abort" | undefined;
  let ending: Promise<void> | undefined;
  const end = (reason: "timeout" | "abort") => {
    if (why || child.pid === undefined) return;
    why = reason;
    ending = endGroup(child.pid, log).catch((e: Error) => log.warn({ err: e.message, cmd }, "could not end process group"));
  };
  const timer = setTimeout(() => end("timeout"), timeoutMs);
  const onAbort = () => end("abort");
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  // "exit" fires when the direct child ends, whatever holds its pipes; "error" when it cannot start.
  const outcome = await new Promise<{ code: number | null; sig: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once("error", (e) => resolve({ code: null, sig: null, spawnError: e }));
    child.once("exit", (code, sig) => resolve({ code, sig }));
  });
  clearTimeout(timer);
  opts.signal?.removeEventListener("abort", onAbort);
  // Take what output is still in the pipes; a descendant that keeps them
  // open (and quiet) does not hold the call.
  await drain(child);
  // After a timeout or abort the call returns only once the whole group is gone.
  if (ending) await ending;

  const durationMs = Math.round((performance.now() - started) * 10) / 10;
  const stdout = out.text();
  let stderr = err.text();
  let exitCode: number;
  let signal: string | undefined;
  if (outcome.spawnError) {
    exitCode = 1;
    stderr = `${stderr}\n${outcome.spawnError.message}`.trim();
  } else if (why === "timeout") {
    exitCode = 124;
    signal = outcome.sig ?? undefined;
    stderr = `${stderr}\ntimed out after ${timeoutMs} ms`.trim();
  } else if (outcome.code === null) {
    exitCode = 1;
    signal = outcome.sig ?? undefined;
    stderr = `${stderr}\n${why === "abort" ? "aborted" : `killed by ${outcome.sig}`}`.trim();
  } else {
    exitCode = outcome.code;
  }
  log.debug({ cmd, args: argv, exitCode, durationMs }, "ran program");
  return { exitCode, stdout, stderr, durationMs, timedOut: why === "timeout" || undefined, signal, outputTruncated: out.truncated || err.truncated || undefined };
}

/** Waits for the child's pipes to end, or until they stay quiet for DRAIN_IDLE_MS, then stops collecting. */
async function drain(child: ChildProcess): Promise<void> {
  const streams = [child.stdout, child.stderr].filter((s): s is NonNullable<typeof s> => s !== null && !s.readableEnded && !s.destroyed);
  if (streams.length === 0) return;
  await new Promise<void>((resolve) => {
    let idle: NodeJS.Timeout;
    const cap = setTimeout(() => finish(), DRAIN_MAX_MS);
    const finish = () => {
      clearTimeout(idle);
      clearTimeout(cap);
      for (const s of streams) {
        s.off("data", arm);
        s.off("close", check);
        s.off("end", check);
      }
      resolve();
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(finish, DRAIN_IDLE_MS);
    };
    const check = () => {
      if (streams.every((s) => s.readableEnded || s.destroyed)) finish();
    };
    for (const s of streams) {
      s.on("data", arm);
      s.on("close", check);
      s.on("end", check);
    }
    arm();
    check();
  });
  child.stdin?.destroy();
  // Never close the read ends while a descendant may still write to them: a
  // daemon (haproxy's master prints its NOTICE lines after the launcher
  // exited) would die of SIGPIPE. Output from now on is read and dropped,
  // and the pipes no longer keep the agent's event loop alive.
  for (const s of [child.stdout, child.stderr]) {
    if (!s || s.readableEnded || s.destroyed) continue;
    s.removeAllListeners("data");
    s.on("data", () => {});
    s.resume();
    (s as unknown as { unref?: () => void }).unref?.();
  }
}

/** Runs a program and throws a `failed` DomainError unless it exits 0. */
export async function runChecked(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) {
    throw failed(`${file} ${args.join(" ")} exited with ${r.exitCode}`, (r.stderr || r.stdout).trim(), "COMMAND_FAILED");
  }
  return r;
}
