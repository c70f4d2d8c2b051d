// Files of /proc/net of another network namespace, read without running a
// program: /proc/<pid>/net/* shows the namespace of process <pid>, so any
// process already living in the load-balancer namespace (an haproxy,
// keepalived) is a window into it. The process found is remembered and
// checked on every read (it may have ended, or its pid been reused); only
// when no process lives in the namespace is a program run (`cat` inside it
// through `ip netns exec`), and then /proc is searched again at most once a
// second.
import { readFileSync, readlinkSync } from "node:fs";
import { readdir, readlink, stat } from "node:fs/promises";
import { run } from "./exec.js";

const RESCAN_MS = 1000;

export type NetnsFallback = (netns: string, file: string) => Promise<string>;

/** The fallback: `cat FILE` inside the namespace (empty when that fails, e.g. no such namespace yet). */
export const catInNetns: NetnsFallback = async (netns, file) => (await run("cat", [file], { netns, timeoutMs: 5000 })).stdout;

export class NetnsProcFiles {
  private readonly windows = new Map<string, { pid?: number; searchedAt: number }>();

  constructor(private readonly fallback: NetnsFallback = catInNetns, private readonly procRoot = "/proc") {}

  /** The text of /proc/net/<name> (e.g. "dev") as seen inside `netns`. */
  async read(netns: string, name: string): Promise<string> {
    const want = await namespaceLink(netns);
    const w = this.windows.get(netns) ?? { searchedAt: -Infinity };
    this.windows.set(netns, w);
    if (want !== undefined) {
      if (w.pid !== undefined && !this.isInNow(w.pid, want)) w.pid = undefined;
      if (w.pid === undefined && performance.now() - w.searchedAt >= RESCAN_MS) {
        w.searchedAt = performance.now();
        w.pid = await this.find(want);
      }
      if (w.pid !== undefined) {
        try {
          // Synchronous: /proc is made in memory, faster than a trip through the thread pool.
          const text = readFileSync(`${this.procRoot}/${w.pid}/net/${name}`, "utf8");
          // Still the same namespace after the read: the pid was not reused meanwhile.
          if (this.isInNow(w.pid, want)) return text;
        } catch {
          // ended between the check and the read
        }
        w.pid = undefined;
      }
    }
    return this.fallback(netns, `/proc/net/${name}`);
  }

  private isInNow(pid: number, link: string): boolean {
    try {
      return readlinkSync(`${this.procRoot}/${pid}/ns/net`) === link;
    } catch {
      return false;
    }
  }

  private async isIn(pid: number, link: string): Promise<boolean> {
    return readlink(`${this.procRoot}/${pid}/ns/net`).then((l) => l === link, () => false);
  }

  private async find(link: string): Promise<number | undefined> {
    const pids = (await readdir(this.procRoot).catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
    for (const p of pids) if (await this.isIn(Number(p), link)) return Number(p);
    return undefined;
  }
}

/** "net:[<inode>]", what /proc/<pid>/ns/net links to for a process in the named namespace. */
async function namespaceLink(netns: string): Promise<string | undefined> {
  if (netns.includes("/")) return undefined;
  try {
    return `net:[${(await stat(`/run/netns/${netns}`)).ino}]`;
  } catch {
    return undefined;
  }
}
