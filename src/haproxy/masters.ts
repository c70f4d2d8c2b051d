// Which haproxy masters run for a load balancer, known by more than the pid
// file haproxy itself rewrites (it removes and recreates it at every
// reload's re-exec, and a start that fails half-way can leave a master the
// file does not name). A master's identity is its pid plus its start time
// in /proc (a recycled pid has another start time) plus its command line
// (`-p <the load balancer's pid file>`). The manager cross-checks it with
// the master socket's `show proc`, and uses it for stop, delete, restart,
// supervision and adoption.
//
// A haproxy process "of" a load balancer is one whose command line names its
// pid file after -p; a master is one of those whose parent is not one of
// them (workers are forks of their master; the `haproxy -W -D` launcher of a
// start under way counts as a master too, which is what a caller holding the
// load balancer's lock wants: nothing of that load balancer may run unseen).
import { readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

export interface MasterIdentity {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot; a recycled pid has another. */
  startTime: string;
  /** The pid file its command line names (-p): whose load balancer it serves. */
  pidFile: string;
}

interface ProcEntry extends MasterIdentity {
  ppid: number;
}

// /proc reads are synchronous on purpose: each is a few microseconds of
// kernel memory, while an asynchronous read costs a thread-pool round trip;
// a pass over ~150 processes takes ~2.5 ms this way and 10-45 ms (under
// load) the other way, and it runs under a load balancer's lock on every
// start, stop and delete.

/** Command name, parent and start time of a process, or undefined when it is gone (or a zombie). */
function statOf(pid: number): { comm: string; ppid: number; startTime: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  const close = stat.lastIndexOf(")");
  const f = stat.slice(close + 2).split(" ");
  // A dead master nobody reaped stays a zombie (init in a container may not reap).
  if (f[0] === "Z" || f[0] === "X" || f[0] === "x") return undefined;
  return { comm: stat.slice(stat.indexOf("(") + 1, close), ppid: Number(f[1]), startTime: f[19] ?? "" };
}

/**
 * The -p argument of a haproxy command line, or "" when it has none (or is
 * gone). A master re-executing for a reload shows an empty command line for
 * an instant (the kernel has switched to the new program but not yet set up
 * its arguments; measured: 2 reads in 13,730 over 10 reloads): read again then.
 */
async function pidFileArg(pid: number): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    let raw: string;
    try {
      raw = readFileSync(`/proc/${pid}/cmdline`, "latin1");
    } catch {
      return "";
    }
    if (raw === "" && attempt < 50) {
      await sleep(1);
      continue;
    }
    const args = raw.split("\0");
    const i = args.indexOf("-p");
    return i >= 0 ? args[i + 1] ?? "" : "";
  }
}

/**
 * Every live haproxy master whose pid file lies under `dir` (a load
 * balancer's folder, or the folder of all of them), by pid file. One pass
 * over /proc: one read per process, two for haproxy ones.
 */
export async function mastersUnder(dir: string): Promise<Map<string, MasterIdentity[]>> {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return new Map();
  }
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const found: ProcEntry[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = statOf(pid);
    if (!st || !st.comm.startsWith("haproxy")) continue;
    const pidFile = await pidFileArg(pid);
    if (!pidFile.startsWith(prefix)) continue;
    found.push({ pid, ppid: st.ppid, startTime: st.startTime, pidFile });
  }
  const byPid = new Map(found.map((p) => [p.pid, p]));
  const out = new Map<string, MasterIdentity[]>();
  for (const p of found) {
    if (byPid.get(p.ppid)?.pidFile === p.pidFile) continue; // a worker of that master
    const list = out.get(p.pidFile) ?? [];
    list.push({ pid: p.pid, startTime: p.startTime, pidFile: p.pidFile });
    out.set(p.pidFile, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.pid - b.pid);
  return out;
}

/** The live masters of the load balancer whose pid file is `pidFile`. */
export async function mastersOf(pidFile: string): Promise<MasterIdentity[]> {
  const dir = pidFile.slice(0, pidFile.lastIndexOf("/"));
  return (await mastersUnder(dir)).get(pidFile) ?? [];
}

/** The identity of process `pid` as a master of `pidFile`, if it is one (alive, haproxy, names it). */
export async function identify(pid: number, pidFile: string): Promise<MasterIdentity | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const st = statOf(pid);
  if (!st || !st.comm.startsWith("haproxy") || (await pidFileArg(pid)) !== pidFile) return undefined;
  return { pid, startTime: st.startTime, pidFile };
}

/** True while that very process runs: same pid, same start time, same pid file, not a zombie. */
export async function stillRuns(m: MasterIdentity): Promise<boolean> {
  const now = await identify(m.pid, m.pidFile);
  return now !== undefined && now.startTime === m.startTime;
}

export const sameMaster = (a: MasterIdentity | undefined, b: MasterIdentity | undefined) =>
  a !== undefined && b !== undefined && a.pid === b.pid && a.startTime === b.startTime && a.pidFile === b.pidFile;

/** Sends `sig` to that very process (never to a recycled pid). */
async function signal(m: MasterIdentity, sig: NodeJS.Signals): Promise<void> {
  if (!(await stillRuns(m))) return;
  try {
    process.kill(m.pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

async function allGone(ms: MasterIdentity[], waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const alive = (await Promise.all(ms.map(stillRuns))).some(Boolean);
    if (!alive) return true;
    if (Date.now() >= deadline) return false;
    await sleep(10);
  }
}

export type EndHow = "not-running" | "graceful" | "terminated" | "killed";

/**
 * Ends every master given: SIGUSR1 (in-flight connections finish; the
 * master ends its workers and then itself), SIGTERM after `graceMs`,
 * SIGKILL 3 s later. Throws when one survives SIGKILL.
 */
export async function endMasters(ms: MasterIdentity[], graceMs: number): Promise<EndHow> {
  const live = (await Promise.all(ms.map(async (m) => ((await stillRuns(m)) ? m : undefined)))).filter((m): m is MasterIdentity => !!m);
  if (!live.length) return "not-running";
  let how: EndHow = "graceful";
  for (const m of live) await signal(m, "SIGUSR1");
  if (await allGone(live, graceMs)) return how;
  how = "terminated";
  for (const m of live) await signal(m, "SIGTERM");
  if (await allGone(live, 3000)) return how;
  how = "killed";
  for (const m of live) await signal(m, "SIGKILL");
  if (await allGone(live, 3000)) return how;
  throw new Error(`haproxy master ${live.map((m) => m.pid).join(", ")} survived SIGKILL`);
}

export const describeMaster = (m: MasterIdentity) => `${m.pid} (started at tick ${m.startTime})`;

/**
 * When process `pid` started, in Unix ms (~10 ms precision: /proc counts
 * clock ticks since boot, USER_HZ = 100 on Linux), or undefined if it is gone.
 */
export async function startedAtMs(pid: number): Promise<number | undefined> {
  const st = statOf(pid);
  if (!st) return undefined;
  const uptime = Number((await readFile("/proc/uptime", "utf8")).split(" ")[0]);
  return Date.now() - uptime * 1000 + Number(st.startTime) * 10;
}
