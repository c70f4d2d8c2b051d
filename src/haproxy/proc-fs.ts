// What /proc tells about haproxy processes and the machine's memory.
// Note: on machines whose init does not reap orphans, a dead master stays a
// zombie, and kill(pid, 0) still succeeds on it: read the state instead.
import { readFile } from "node:fs/promises";
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
