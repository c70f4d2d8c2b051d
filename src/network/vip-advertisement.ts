// Announces the VIPs of a load balancer after haproxy started or reloaded,
// in SINGLE topology, as Octavia's agent does: a gratuitous ARP for each
// IPv4 VIP, an unsolicited neighbour advertisement for each IPv6 VIP, sent
// from the load-balancer namespace on the interface that holds the address.
// After a failover to a new amphora (same VIP, new MAC) routers otherwise
// keep sending to the old MAC until their caches expire. In ACTIVE_STANDBY
// keepalived announces the VIP when it becomes MASTER, so nothing is sent.
//
// Tools (each run through src/system/exec.ts):
// - IPv4: `arping` (Debian package `arping`, 2.x): `-U -S VIP VIP` sends
//   the frame Octavia's agent builds by hand (an ARP request whose sender
//   and target are the VIP, target MAC broadcast); `-w 0` returns right
//   after sending instead of waiting a second for a reply that never comes.
// - IPv6: `na6` (Debian package `ipv6toolkit`): an unsolicited NA to
//   ff02::1 from the VIP, target = VIP, Override flag, with the target
//   link-layer address option (RFC 4861 7.2.6). ndisc6 cannot do this: it
//   only sends solicitations. Octavia's hand-built NA also sets the Router
//   flag; an amphora is no router, so it is not set here.
//
// Announcing is best effort and never fails the start or reload that
// triggered it (it runs after the answer's outcome is settled): a missing
// tool or a failed send is a logged warning.
import { isIP } from "node:net";
import type { Logger } from "../log.js";
import type { LoadBalancerCatalog, LoadBalancerEvent } from "../haproxy/catalog.js";
import { run } from "../system/exec.js";
import { listAddresses, normalizeIp } from "./interfaces.js";

export interface AdvertiserOptions {
  /** The load-balancer namespace (""= none configured: nothing is announced, see `announce`). */
  netns: () => string;
  topology: () => "SINGLE" | "ACTIVE_STANDBY";
  /** The stored haproxy config of a load balancer. */
  configOf: (lbId: string) => Promise<string>;
  logger: Logger;
  /** Program names (tests point them at missing ones). */
  arping?: string;
  na6?: string;
}

export interface Announcement {
  vip: string;
  ifname?: string;
  ok: boolean;
  /** Why it was not sent, or what failed. */
  note?: string;
}

/**
 * The addresses haproxy binds for a load balancer, in the order found:
 * every `ADDR:PORT` of `bind` lines (an IPv6 address unbracketed as
 * Octavia renders it, or in brackets). Wildcards, loopback, unix sockets
 * and names are not VIPs.
 */
export function bindAddresses(config: string): string[] {
  const out = new Set<string>();
  for (const raw of config.split(/\r?\n/)) {
    const words = raw.trim().split(/\s+/);
    if (words[0] !== "bind") continue;
    // `bind A:80,B:80 ssl crt ...`: the address list is the first argument.
    for (const item of (words[1] ?? "").split(",")) {
      const m = /^\[?(.*?)\]?:(\d+(?:-\d+)?)$/.exec(item);
      if (!m) continue;
      const ip = m[1]!;
      if (!isIP(ip) || ip.includes("%")) continue;
      const n = normalizeIp(ip);
      if (n === "0.0.0.0" || n === "::" || n === "::1" || n.startsWith("127.")) continue;
      out.add(n);
    }
  }
  return [...out];
}

export class VipAdvertiser {
  constructor(private readonly o: AdvertiserOptions) {}

  /** Announces after every start and successful reload; returns the unsubscribe function. */
  follow(catalog: LoadBalancerCatalog): () => void {
    const onEvent = async (e: LoadBalancerEvent) => {
      if (e.type !== "started" && e.type !== "reloaded") return;
      await this.announce(e.lbId);
    };
    catalog.on("event", onEvent);
    return () => {
      catalog.off("event", onEvent);
    };
  }

  /** Sends the announcements for one load balancer (none in ACTIVE_STANDBY). Never throws. */
  async announce(lbId: string): Promise<Announcement[]> {
    const log = this.o.logger;
    try {
      if (this.o.topology() !== "SINGLE") return [];
      const netns = this.o.netns();
      // Octavia announces only from its load-balancer namespace; the agent's
      // own namespace holds the management port, which is no VIP network.
      if (!netns) return [];
      const vips = bindAddresses(await this.o.configOf(lbId));
      if (!vips.length) return [];
      const holders = new Map<string, string>();
      for (const link of await listAddresses(netns)) {
        for (const a of link.addr_info ?? []) holders.set(normalizeIp(a.local), link.ifname);
      }
      const results: Announcement[] = [];
      for (const vip of vips) {
        const ifname = holders.get(vip);
        if (!ifname) {
          results.push({ vip, ok: false, note: "no interface of the load-balancer namespace holds it" });
          continue;
        }
        results.push(await this.send(netns, ifname, vip));
      }
      for (const r of results) {
        if (r.ok) log.info({ lbId, vip: r.vip, ifname: r.ifname }, "VIP announced");
        else log.warn({ lbId, vip: r.vip, ifname: r.ifname, err: r.note }, "VIP not announced (routers learn the MAC when their cache expires)");
      }
      return results;
    } catch (e) {
      log.warn({ lbId, err: (e as Error).message }, "VIP announcement failed");
      return [];
    }
  }

  private async send(netns: string, ifname: string, vip: string): Promise<Announcement> {
    const v4 = isIP(vip) === 4;
    const [cmd, args] = v4
      ? [this.o.arping ?? "arping", ["-U", "-c", "1", "-w", "0", "-i", ifname, "-S", vip, vip]]
      : [this.o.na6 ?? "na6", ["-i", ifname, "-s", vip, "-d", "ff02::1", "-t", vip, "-o", "-e"]];
    const r = await run(cmd, args, { netns, timeoutMs: 5000, logger: this.o.logger });
    const out = `${r.stderr}\n${r.stdout}`.trim();
    if (/exec of .* failed|ENOENT|No such file or directory/.test(out) && r.exitCode !== 0) {
      return { vip, ifname, ok: false, note: `${cmd} is not installed (Debian package ${v4 ? "arping" : "ipv6toolkit"})` };
    }
    // arping exits 1 when nothing answers, which an unsolicited ARP never
    // expects: it was sent when arping counts it as transmitted.
    const ok = v4 ? /\b[1-9]\d* packets transmitted/.test(r.stdout) : r.exitCode === 0;
    return ok ? { vip, ifname, ok } : { vip, ifname, ok, note: `${cmd} exited with ${r.exitCode}: ${out}` };
  }
}
