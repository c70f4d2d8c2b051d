// Starts the agent as a real process (bin/amphora-agent.js) and waits for its
// "agent listening" log line; every process started here is killed when the
// test file ends.
import { after } from "node:test";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

const procs: ChildProcess[] = [];
after(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

/**
 * The bin runs the compiled agent (`npm test` builds dist/ first); with
 * AMPHORA_REQUIRE_DIST=1 it fails rather than fall back to the sources, so
 * these tests prove the compiled agent runs.
 */
const REQUIRE_DIST = { ...process.env, AMPHORA_REQUIRE_DIST: "1" };

export interface AgentProcess {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
}

/** `netns`: run it inside that network namespace (`ip netns exec`, which execs node: the pid is the agent's). */
export async function startProcess(args: string[], o: { netns?: string } = {}): Promise<AgentProcess> {
  const argv = [process.execPath, "bin/amphora-agent.js", ...args];
  const [cmd, cmdArgs] = o.netns ? ["ip", ["netns", "exec", o.netns, ...argv]] : [argv[0]!, argv.slice(1)];
  const proc = spawn(cmd, cmdArgs, { stdio: ["ignore", "pipe", "pipe"], env: REQUIRE_DIST });
  procs.push(proc);
  let out = "";
  let err = "";
  proc.stderr!.on("data", (c) => (err += c));
  proc.stdout!.on("data", (c) => (out += c));
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", () => {
      const m = /"url":"(https:[^"]+)".*agent listening/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.on("exit", (code) => reject(new Error(`agent exited ${code}: ${err}`)));
  });
  return { proc, url, stdout: () => out, stderr: () => err };
}

/**
 * Runs the agent expecting it to refuse to start: its exit code and stderr.
 * One still running after `ms` is killed and reported as "still running".
 */
export async function failedStart(args: string[], ms = 30_000): Promise<{ code: number | null | "still running"; stderr: string }> {
  const proc = spawn(process.execPath, ["bin/amphora-agent.js", ...args], { stdio: ["ignore", "ignore", "pipe"], env: REQUIRE_DIST });
  procs.push(proc);
  let err = "";
  proc.stderr!.on("data", (c) => (err += c));
  const exited = once(proc, "exit");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((r) => { timer = setTimeout(() => r("late"), ms); });
  const first = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (first === "late") {
    await killHard(proc);
    return { code: "still running", stderr: err };
  }
  return { code: first[0] as number | null, stderr: err };
}

/** SIGKILL, and wait until the process is gone. */
export async function killHard(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = once(p, "exit");
  p.kill("SIGKILL");
  await gone;
}
