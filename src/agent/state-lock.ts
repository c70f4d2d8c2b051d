// One agent per state directory: an advisory lock held for the agent's life.
// Two agents on one directory would both adopt and supervise the same
// haproxy processes and write the same metadata.
//
// Node has no flock(), so the lock is a symbolic link, `<state>/agent.lock`,
// whose target names the holder: `<pid>:<start ticks>:<boot id>`.
// - symlink() creates it with its content in one atomic step (EEXIST when
//   it exists): no window in which a lock exists but does not yet say whose
//   it is, unlike an O_EXCL file written after it was created.
// - A short target lives in the inode (no data block), so taking the lock
//   needs no free space on a full disk.
// - On conflict the holder is verified, not trusted: it holds only while
//   /proc/<pid> exists, is not a zombie, has the same start time (clock
//   ticks since boot, field 22 of /proc/<pid>/stat) and the boot id is this
//   boot's. A dead agent, a pid reused by another process, or a lock from
//   before a reboot is stale.
// - A stale lock is broken by renaming it to a unique name and checking that
//   what was renamed is the very lock judged stale; if another starter
//   replaced it meanwhile, its lock is put back (link() never overwrites).
//   Then the take is retried, so two agents racing for one stale lock end
//   with one holder.
// Released by stop() (only if it is still ours); a killed agent leaves it
// behind, and the next start finds it stale.
import { readFileSync } from "node:fs";
import { link, readlink, rename, symlink, unlink } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { DomainError } from "../errors.js";

export const LOCK_NAME = "agent.lock";

export interface LockHolder {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  startTicks: number;
  bootId: string;
}

export interface StateLock {
  path: string;
  holder: LockHolder;
  /** Removes the lock if it is still this one. */
  release(): Promise<void>;
}

/** The state directory is held by a live agent. */
export class StateDirLocked extends DomainError {
  constructor(readonly stateDir: string, readonly holder: LockHolder & { startedAt?: string }) {
    super(
      "precondition",
      `state directory ${stateDir} is in use by another agent: pid ${holder.pid}, started ${holder.startedAt ?? `at tick ${holder.startTicks}`} (lock ${join(stateDir, LOCK_NAME)}); stop it first`,
      "",
      "STATE_DIR_LOCKED",
    );
  }
}

function bootId(): string {
  return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().replace(/-/g, "");
}

/** Field 22 of /proc/<pid>/stat, or undefined when the process is gone or a zombie. */
export function processStart(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (f[0] === "Z" || f[0] === "X") return undefined;
  return Number(f[19]);
}

/** Wall-clock start of a process of this boot (USER_HZ is 100 on Linux). */
function startedAt(ticks: number): string | undefined {
  const btime = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1];
  return btime ? new Date((Number(btime) + ticks / 100) * 1000).toISOString() : undefined;
}

export function formatHolder(h: LockHolder): string {
  return `${h.pid}:${h.startTicks}:${h.bootId}`;
}

export function parseHolder(target: string): LockHolder | undefined {
  const m = /^(\d+):(\d+):([0-9a-f]{32})$/.exec(target);
  return m ? { pid: Number(m[1]), startTicks: Number(m[2]), bootId: m[3]! } : undefined;
}

/** Whether the process the lock names is still that process. */
export function holderAlive(h: LockHolder): boolean {
  return h.bootId === bootId() && processStart(h.pid) === h.startTicks;
}

export function thisProcess(): LockHolder {
  return { pid: process.pid, startTicks: processStart(process.pid)!, bootId: bootId() };
}

async function readTarget(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    // EINVAL: something else than a symlink sits there (a plain file): stale by definition.
    if (code === "EINVAL") return "";
    throw e;
  }
}

/** Moves a stale lock away, unless another starter replaced it after it was judged. */
async function breakStale(path: string, judged: string): Promise<void> {
  const aside = `${path}.stale-${randomBytes(6).toString("hex")}`;
  try {
    await rename(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // someone else broke it
    throw e;
  }
  const moved = await readTarget(aside);
  if (moved !== judged) {
    // A live lock taken meanwhile: back where it was (link never replaces).
    await link(aside, path).catch(() => {});
  }
  await unlink(aside).catch(() => {});
}

export interface LockOptions {
  /** Told when a stale lock was broken (whose it was). */
  onStale?: (target: string) => void;
}

/**
 * Takes the lock of `stateDir` or throws StateDirLocked naming the live
 * holder. The caller (same process) holding it already counts as a holder.
 */
export async function acquireStateLock(stateDir: string, o: LockOptions = {}): Promise<StateLock> {
  const path = join(stateDir, LOCK_NAME);
  const me = thisProcess();
  const mine = formatHolder(me);
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await symlink(mine, path);
      let released = false;
      return {
        path,
        holder: me,
        async release() {
          if (released) return;
          released = true;
          if ((await readTarget(path).catch(() => undefined)) === mine) await unlink(path).catch(() => {});
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const target = await readTarget(path);
    if (target === undefined) continue; // released meanwhile
    const holder = parseHolder(target);
    if (holder && holderAlive(holder)) {
      throw new StateDirLocked(stateDir, { ...holder, startedAt: startedAt(holder.startTicks) });
    }
    o.onStale?.(target);
    await breakStale(path, target);
  }
  throw new DomainError("unavailable", `could not take the lock of state directory ${stateDir}: it kept changing`, "", "STATE_DIR_LOCK_BUSY");
}
