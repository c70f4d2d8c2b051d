// Facts about the amphora host: versions, hostname, resource usage.
import { hostname, cpus } from "node:os";
import { readFileSync, statfsSync } from "node:fs";
import { run } from "./exec.js";
import { ProgramVersions } from "./program-version.js";
import { NetnsProcFiles } from "./netns-proc.js";

export const API_VERSION = "1.0";

/**
 * A /proc file, read synchronously: the kernel makes it in memory in
 * microseconds, while an asynchronous read takes four trips through libuv's
 * thread pool (open, stat, read, close) that GET /1.0/details made five
 * times per call.
 */
function readProc(path: string): string {
  return readFileSync(path, "utf8");
}

// Asked once per installed binary, again when its file changes.
const versions = new ProgramVersions();

/** First line of `haproxy -v`, reduced to the version ("2.6.12-1+deb12u4"). */
export function haproxyVersion(cmd = "haproxy"): Promise<string> {
  return versions.get(cmd, async (path) => {
    const r = await run(path, ["-v"], { timeoutMs: 5000 });
    return /version\s+(\S+)/i.exec(r.stdout)?.[1] ?? "";
  });
}

export function keepalivedVersion(cmd = "keepalived"): Promise<string> {
  return versions.get(cmd, async (path) => {
    const r = await run(path, ["-v"], { timeoutMs: 5000 });
    return /Keepalived v(\S+)/.exec(`${r.stdout}\n${r.stderr}`)?.[1] ?? "";
  });
}

// The hostname, asked of the kernel at most once a second: os.hostname()
// (uname plus an error check) was 3 % of a GET /1.0/info, and a host
// renamed (cloud-init at first boot) is seen within a second.
let host = { name: "", at: -Infinity };

export function hostName(): string {
  const now = performance.now();
  if (now - host.at >= 1000) host = { name: hostname(), at: now };
  return host.name;
}

export interface MemInfo {
  total: bigint; free: bigint; buffers: bigint; cached: bigint; swapUsed: bigint; shared: bigint; slab: bigint; available: bigint;
}

/** /proc/meminfo values in kB. */
export function parseMeminfo(text: string): MemInfo {
  const kv = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const m = /^([\w()]+):\s+(\d+)/.exec(line);
    if (m) kv.set(m[1]!, BigInt(m[2]!));
  }
  const g = (k: string) => kv.get(k) ?? 0n;
  return {
    total: g("MemTotal"), free: g("MemFree"), buffers: g("Buffers"), cached: g("Cached"),
    swapUsed: g("SwapTotal") - g("SwapFree"), shared: g("Shmem"), slab: g("Slab"), available: g("MemAvailable"),
  };
}

/** Aggregate CPU jiffies from the first line of /proc/stat. */
export function parseProcStat(text: string): { total: bigint; user: bigint; system: bigint; softIrq: bigint } {
  const f = (text.split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map((x) => BigInt(x));
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const [user = 0n, nice = 0n, system = 0n, idle = 0n, iowait = 0n, irq = 0n, softIrq = 0n, steal = 0n] = f;
  return { total: user + nice + system + idle + iowait + irq + softIrq + steal, user, system, softIrq };
}

/** Per-interface byte counters from /proc/net/dev. */
export function parseNetDev(text: string): Map<string, { rx: bigint; tx: bigint }> {
  const out = new Map<string, { rx: bigint; tx: bigint }>();
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const cols = m[2]!.trim().split(/\s+/);
    out.set(m[1]!.trim(), { rx: BigInt(cols[0] ?? 0), tx: BigInt(cols[8] ?? 0) });
  }
  return out;
}

// Another namespace's /proc/net, through a process living in it.
const netnsFiles = new NetnsProcFiles();

export async function readNetDev(netns = ""): Promise<Map<string, { rx: bigint; tx: bigint }>> {
  // /proc/net/dev shows the namespace of the reading process.
  if (!netns) return parseNetDev(readProc("/proc/net/dev"));
  return parseNetDev(await netnsFiles.read(netns, "dev"));
}

export async function loadAverage(): Promise<number[]> {
  const t = readProc("/proc/loadavg");
  return t.trim().split(/\s+/).slice(0, 3).map(Number);
}

export async function rootDisk(): Promise<{ used: bigint; available: bigint }> {
  const s = statfsSync("/", { bigint: true });
  return { used: (s.blocks - s.bfree) * s.bsize, available: s.bavail * s.bsize };
}

export async function memInfo(): Promise<MemInfo> {
  return parseMeminfo(readProc("/proc/meminfo"));
}

export async function cpuUsage() {
  return parseProcStat(readProc("/proc/stat"));
}

// os.cpus() reads /proc/cpuinfo and builds an object per CPU (~0.15 ms);
// the count of an amphora's CPUs does not change while the agent runs.
let cpusSeen: number | undefined;
export const cpuCount = () => (cpusSeen ??= cpus().length);
