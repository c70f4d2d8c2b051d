// What /proc tells about haproxy processes and the machine's memory.
// Note: on machines whose init does not reap orphans, a dead master stays a
// zombie, and kill(pid, 0) still succeeds on it: read the state instead.
import { readdir, readFile } from "node:fs/promises";
import { memInfo } from "../system/info.js";

/** True when the process exists and is not a zombie. */
export async function processAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": the state follows the last ")".
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The program name of a process, or "" if it is gone. */
export async function processName(pid: number): Promise<string> {
  try {
    return (await readFile(`/proc/${pid}/comm`, "utf8")).trim();
  } catch {
    return "";
  }
}

/** Resident set size of a process in bytes (0 if it is gone). */
export async function residentBytes(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** MemAvailable from /proc/meminfo, in bytes. */
export async function memAvailableBytes(): Promise<number> {
  const { available } = await memInfo();
  if (!available) throw new Error("MemAvailable missing from /proc/meminfo");
  return Number(available) * 1024;
}

/** The command line of a process as arguments ([] if it is gone). */
export async function processArgs(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** The parent pid of a process (0 if it is gone). */
export async function processParent(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ppid ...": fields after the last ")".
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) || 0;
  } catch {
    return 0;
  }
}

/**
 * The live haproxy master whose command line has `arg` (a load balancer's
 * pid file), found through /proc: for when its pid file cannot tell (a
 * re-executing master removes and rewrites it). Its workers are forks with
 * the same command line; the master is the one whose parent is none of them.
 */
export async function haproxyMasterNaming(arg: string): Promise<number | undefined> {
  let names: string[];
  try {
    names = await readdir("/proc");
  } catch {
    return undefined;
  }
  const found: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (!(await processName(pid)).startsWith("haproxy")) continue;
    if ((await processArgs(pid)).includes(arg) && (await processAlive(pid))) found.push(pid);
  }
  const parents = await Promise.all(found.map(processParent));
  const masters = found.filter((_, i) => !found.includes(parents[i]!));
  return masters.length === 1 ? masters[0] : undefined;
}
