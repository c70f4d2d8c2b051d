// Pid files of daemons the agent starts but does not parent: a pid counts
// only if that process is alive (zombies do not count: PID 1 in a container
// may never reap them) and is the program we expect (pids get reused).
import { readFile } from "node:fs/promises";

export async function readPidFile(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, "utf8")).trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` runs and its command name is `comm`. */
export async function isRunning(pid: number, comm: string): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // "PID (COMM) STATE ..." — COMM may contain spaces, so split at the last ')'.
    const close = stat.lastIndexOf(")");
    const name = stat.slice(stat.indexOf("(") + 1, close);
    const state = stat.slice(close + 2, close + 3);
    return name === comm && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The live pid recorded in `file`, if any. */
export async function livePid(file: string, comm: string): Promise<number | undefined> {
  const pid = await readPidFile(file);
  return pid !== undefined && (await isRunning(pid, comm)) ? pid : undefined;
}

/** Polls `cond` every `stepMs` until it is true or `timeoutMs` passed. */
export async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
