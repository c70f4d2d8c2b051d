// Helpers for tests of programs that hang, linger or leave descendants:
// scripts in a scratch folder, pids they report, bounded waits.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Alive and not a zombie waiting to be reaped. */
export function pidRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Fails the test instead of hanging it when `p` does not settle within `ms` (the old wrapper never returned). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); });
  try {
    return await Promise.race([p, bound]);
  } finally {
    clearTimeout(timer);
  }
}

export function scratch(t: { after(fn: () => void): void }, prefix = "faults-exec-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const pids: number[] = [];
  t.after(() => {
    // Also the pids a failing run never got to read.
    for (const f of readdirSync(dir).filter((n) => n.endsWith(".pid"))) pids.push(Number(readFileSync(join(dir, f), "utf8").trim()));
    for (const pid of pids) try { if (pid > 0) process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  });
  const script = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  };
  /** The pid the script wrote (read once it is there), remembered for clean-up. */
  const pidIn = async (file: string) => {
    for (let i = 0; i < 500; i++) {
      try {
        const pid = Number(readFileSync(file, "utf8").trim());
        if (pid > 0) { pids.push(pid); return pid; }
      } catch { /* not yet */ }
      await sleep(10);
    }
    throw new Error(`no pid in ${file}`);
  };
  return { dir, script, pidIn };
}

