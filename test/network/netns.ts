// Test topology helpers: namespaces named amt-<random> and veth pairs between
// them (dummy/macvlan/ipvlan do not exist on this kernel). Everything made
// here is registered for removal, so a failing test leaves nothing behind.
import { randomBytes } from "node:crypto";
import { run, runChecked } from "../../src/system/exec.js";

export class Topology {
  private readonly namespaces: string[] = [];

  /** Creates a namespace with a unique amt- name and loopback up. */
  async netns(): Promise<string> {
    const name = `amt-${randomBytes(4).toString("hex")}`;
    await runChecked("ip", ["netns", "add", name]);
    this.namespaces.push(name);
    await runChecked("ip", ["-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  /**
   * A veth pair: `a` in namespace `nsA` (with MAC `macA` when given), `b` in
   * `nsB`. Both ends are left DOWN unless `up` is set (plugging brings the
   * agent's end up itself).
   */
  async veth(nsA: string, a: string, nsB: string, b: string, o: { macA?: string; up?: boolean } = {}): Promise<void> {
    await runChecked("ip", ["-n", nsA, "link", "add", a, ...(o.macA ? ["address", o.macA] : []), "type", "veth", "peer", "name", b, "netns", nsB]);
    if (o.up) {
      await runChecked("ip", ["-n", nsA, "link", "set", a, "up"]);
      await runChecked("ip", ["-n", nsB, "link", "set", b, "up"]);
    }
  }

  async ip<T = unknown>(ns: string, args: string[]): Promise<T> {
    const r = await runChecked("ip", ["-n", ns, "-j", ...args]);
    return JSON.parse(r.stdout || "[]") as T;
  }

  async sh(ns: string, file: string, args: string[]): Promise<void> {
    await runChecked(file, args, { netns: ns });
  }

  /** A fresh amt- name, not created: for code under test that creates it; deleted at cleanup. */
  reserveName(): string {
    const name = `amt-${randomBytes(4).toString("hex")}`;
    this.namespaces.push(name);
    return name;
  }

  /** Deletes every namespace made here (veths die with them). */
  async cleanup(): Promise<void> {
    for (const ns of this.namespaces.splice(0)) await run("ip", ["netns", "del", ns]);
  }
}

/** IPv4 addresses (with prefix length) on an interface. */
export async function ipv4Of(topo: Topology, ns: string, dev: string): Promise<string[]> {
  const out = await topo.ip<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(ns, ["addr", "show", "dev", dev]);
  return out.flatMap((l) => l.addr_info).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`).sort();
}

/** Polls until `cond` holds or `ms` passed; returns whether it held. */
export async function eventually(cond: () => Promise<boolean>, ms: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond().catch(() => false)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
