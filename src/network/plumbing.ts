// size: plug VIP and plug network share one apply / roll back / record
// sequence; the record of plugs (PluggedState) is the part to split out next.
// Plugs the VIP and member ports in the load-balancer namespace: finds the
// interface by MAC, applies an InterfacePlan with `ip`, rolls back what this
// call added when a step fails, removes what a previous plug of the same port
// added and the new one no longer wants, and records every plug in
// <stateDir>/network/plugged.json so it can be inspected and re-applied.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DomainError, failed, invalid, notFound } from "../errors.js";
import { KeyedLock } from "../system/keyed-lock.js";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { familyOf, parsePrefix } from "./cidr.js";
import { normalizeIp } from "./interfaces.js";
import { managementAddresses } from "./management.js";
import { IpTool, type IpLink, type IpRoute, type IpRule } from "./ip-tool.js";
import { ensureNamespace } from "./namespace.js";
import {
  planNetwork, planVip, tableFor,
  type InterfacePlan, type NetworkSpec, type PlannedAddress, type PlannedRoute, type PlannedRule, type VipSpec,
} from "./plug-spec.js";

export type Topology = "SINGLE" | "ACTIVE_STANDBY";

export interface PluggedEntry {
  kind: "vip" | "network";
  ifname: string;
  table: string;
  spec: VipSpec | NetworkSpec;
  plan: InterfacePlan;
  pluggedAt: string;
  /**
   * Plans of earlier plugs of this port whose leftovers (what `plan` does
   * not contain) are still to be removed. Written with the new entry and
   * cleared once removed, so a crash in between is finished by reapply().
   */
  stale?: InterfacePlan[];
}

export interface PluggedState {
  version: 1;
  /** Keyed by lower-case MAC address: the port's stable identity. */
  interfaces: Record<string, PluggedEntry>;
}

export interface PlugResult {
  ifname: string;
  plan: InterfacePlan;
}

type Undo = () => Promise<unknown>;
interface Listings {
  routes: Map<string, IpRoute[]>;
  rules: Map<number, IpRule[]>;
}

const routeKey = (r: PlannedRoute) => `${r.family}|${r.table}|${r.dst}|${r.via ?? ""}|${r.onlink ? 1 : 0}`;
const ruleKey = (r: PlannedRule) => `${r.family}|${r.from}|${r.table}|${r.priority}`;
const addrKey = (a: PlannedAddress) => `${normalizeIp(a.ip)}/${a.prefixlen}`;

/** `ip -j route` writes "default" and bare host addresses; turn them into canonical prefixes. */
function canonicalDst(dst: string, family: 4 | 6): string {
  if (dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  const withLen = dst.includes("/") ? dst : `${dst}/${family === 4 ? 32 : 128}`;
  return parsePrefix(withLen, false)?.text ?? dst;
}

export class NetworkPlumbing {
  private readonly lock = new KeyedLock();
  private readonly ip: IpTool;
  private readonly stateFile: string;

  private readonly source: IpTool;

  constructor(
    readonly netns: string,
    stateDir: string,
    private readonly topology: () => Topology = () => "SINGLE",
    private readonly logger: Logger = silentLogger,
    /**
     * Where hot-plugged ports appear before they are moved into `netns`:
     * the agent's own namespace ("") on an amphora; a test namespace in tests.
     */
    readonly sourceNetns = "",
  ) {
    this.ip = new IpTool(netns, logger);
    this.source = new IpTool(sourceNetns, logger);
    this.stateFile = join(stateDir, "network", "plugged.json");
  }

  /** One network change at a time: plans read the live state they change. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run("network", fn);
  }

  /**
   * `bindHost`: the agent's own listening address; the interface carrying
   * it is never plugged (a plug adds routes and rules that could divert the
   * controller's traffic away from the agent).
   */
  plugVip(spec: VipSpec, o: { bindHost?: string } = {}): Promise<PlugResult> {
    return this.plug("vip", spec, (table) => planVip(spec, table, this.topology()), "Error plugging VIP", "Invalid VIP", o.bindHost);
  }

  /**
   * haproxy binds the VIP on both amphorae of a pair, but only the MASTER
   * holds it: non-local binds must be allowed in the namespace (Octavia's
   * image sets the same at boot).
   */
  private async allowNonLocalBind(): Promise<void> {
    await this.ip.sysctl({ "net.ipv4.ip_nonlocal_bind": 1, "net.ipv6.ip_nonlocal_bind": 1 });
  }

  plugNetwork(spec: NetworkSpec, o: { bindHost?: string } = {}): Promise<PlugResult> {
    return this.plug("network", spec, (table) => planNetwork(spec, table, this.topology()), "Error plugging network", "Invalid port information", o.bindHost);
  }

  private plug(
    kind: "vip" | "network", spec: VipSpec | NetworkSpec, plan: (table: string) => InterfacePlan,
    message: string, invalidMessage: string, bindHost = "",
  ) {
    return this.serial(async () => {
      // Check the request before anything is touched (the table number does not change validity).
      plan("0");
      // The first plug creates the load-balancer namespace, as Octavia's agent does.
      await ensureNamespace(this.netns, this.logger).catch((e: unknown) => {
        const why = e instanceof DomainError && e.details ? e.details : (e as Error).message;
        throw failed(message, `could not create the load-balancer network namespace ${this.netns}: ${why}`, "NETNS_FAILED");
      });
      // Before anything moves: the interface the controller reaches the agent on is never taken.
      const mgmt = await this.carriesManagement(spec.macAddress, bindHost);
      if (mgmt) {
        throw new DomainError(
          "precondition", message,
          `refusing to plug ${mgmt.ifname} (${spec.macAddress}): it carries the agent's management address ${mgmt.address} (where the agent is reached); plugging it would move it into the load-balancer namespace and lock the controller out`,
          "MANAGEMENT_INTERFACE",
        );
      }
      const { link, moveBack } = await this.findOrAdopt(spec.macAddress, () => this.octaviaName(kind));
      try {
        await this.refuseProtected(link, bindHost, invalidMessage);
        const table = tableFor(link.ifindex);
        const p = plan(table);
        const prev = (await this.state()).interfaces[spec.macAddress.toLowerCase()];
        await this.commit(link, p, message, kind, prev, { kind, ifname: link.ifname, table, spec, plan: p, pluggedAt: new Date().toISOString() });
        return { ifname: link.ifname, plan: p };
      } catch (e) {
        await moveBack?.();
        throw e;
      }
    });
  }

  /**
   * The interface with `mac` (where it is now: the source namespace or the
   * load-balancer one) when it carries an address the agent is reached on.
   */
  private async carriesManagement(mac: string, bindHost: string): Promise<{ ifname: string; address: string } | undefined> {
    const mgmt = await managementAddresses(bindHost);
    if (!mgmt.size) return undefined;
    for (const tool of this.sourceNetns === this.netns ? [this.ip] : [this.ip, this.source]) {
      const link = await tool.linkByMac(mac);
      if (!link) continue;
      const address = (await tool.addrs(link.ifname)).flatMap((x) => x.addr_info ?? []).map((a) => normalizeIp(a.local)).find((a) => mgmt.has(a));
      return address ? { ifname: link.ifname, address } : undefined;
    }
    return undefined;
  }

  /** lo and the interface carrying the agent's bind address are never plugged. */
  private async refuseProtected(link: IpLink, bindHost: string, invalidMessage: string): Promise<void> {
    if (link.ifname === "lo" || link.flags.includes("LOOPBACK")) {
      throw invalid(invalidMessage, `refusing to plug the loopback interface ${link.ifname}`, "PROTECTED_INTERFACE");
    }
    if (!bindHost || bindHost === "0.0.0.0" || bindHost === "::" || !familyOf(bindHost)) return;
    const want = normalizeIp(bindHost);
    const carries = (await this.ip.addrs(link.ifname)).flatMap((x) => x.addr_info ?? []).some((a) => normalizeIp(a.local) === want);
    if (carries) {
      throw invalid(invalidMessage, `refusing to plug ${link.ifname}: it carries the agent's bind address ${bindHost}`, "PROTECTED_INTERFACE");
    }
  }

  /**
   * Applies `plan` and records it, all or nothing. The order is chosen so
   * that every moment is consistent with plugged.json:
   * 1. apply (adds only; rolls itself back on failure) — the old record
   *    still describes a subset of what is there;
   * 2. sysctl for a VIP, then write the record of the new plan together
   *    with the old plans as `stale` — a failure of either undoes step 1
   *    (the undo list applyWithRollback returned), so nothing changed;
   * 3. only now remove the old plug's leftovers (nothing can be rolled back
   *    after that point, so it comes after the commit), then clear `stale`.
   *    A crash or failure here leaves `stale` in the record and the next
   *    plug or reapply() finishes the removal.
   */
  private async commit(
    link: IpLink, plan: InterfacePlan, message: string, kind: "vip" | "network", prev: PluggedEntry | undefined, entry: PluggedEntry,
  ): Promise<void> {
    const mac = (link.address ?? "").toLowerCase();
    const undo = await this.applyWithRollback(link, plan, message);
    const stale = prev ? [prev.plan, ...(prev.stale ?? [])] : [];
    try {
      if (kind === "vip") await this.allowNonLocalBind();
      await this.record(mac, { ...entry, ...(stale.length ? { stale } : {}) });
    } catch (e) {
      for (const u of undo.reverse()) await u().catch(() => {});
      const detail = e instanceof DomainError ? e.details || e.message : String(e);
      throw failed(message, detail, "PLUG_FAILED");
    }
    if (!stale.length) return;
    try {
      for (const old of stale) await this.removeStale(link, plan, old);
      await this.record(mac, entry);
    } catch (e) {
      // The plug itself is done and recorded; the leftovers are removed next time.
      this.logger.warn({ err: e, dev: link.ifname }, "could not remove all state of the previous plug; will retry at the next plug or restart");
    }
  }

  /**
   * The port with that MAC in the load-balancer namespace; a port that is
   * still in the source namespace (just hot-plugged) is moved in first, as
   * Octavia's agent does. `moveBack` undoes that move if the plug fails.
   */
  private async findOrAdopt(mac: string, wantName: () => Promise<string | undefined>): Promise<{ link: IpLink; moveBack?: () => Promise<unknown> }> {
    const here = await this.ip.linkByMac(mac);
    if (here) return { link: here };
    if (!this.netns || this.sourceNetns === this.netns) return { link: await this.findLink(mac) };
    const there = await this.source.linkByMac(mac);
    if (!there) return { link: await this.findLink(mac) };
    // Renamed as it moves in, as Octavia's agent names ports in its namespace.
    let name = await wantName();
    if (name === there.ifname) name = undefined;
    if (name && (await this.ip.links()).some((l) => l.ifname === name)) {
      this.logger.warn({ ifname: there.ifname, wanted: name, netns: this.netns }, "interface name taken in the load-balancer namespace; the port keeps its name");
      name = undefined;
    }
    try {
      await this.source.exec(["link", "set", "dev", there.ifname, "netns", this.netns, ...(name ? ["name", name] : [])]);
    } catch (e) {
      throw failed(`Error moving interface ${there.ifname} into namespace ${this.netns}`, e instanceof DomainError ? e.details : String(e), "PLUG_FAILED");
    }
    this.logger.info({ ifname: there.ifname, netns: this.netns, ...(name ? { as: name } : {}) }, "moved hot-plugged port into the load-balancer namespace");
    // Back to the source (under its own name): by name, or by our own pid for the agent's namespace.
    const back = this.sourceNetns || String(process.pid);
    return {
      link: await this.findLink(mac),
      moveBack: () => this.ip.tryExec(["link", "set", "dev", name ?? there.ifname, "netns", back, ...(name ? ["name", there.ifname] : [])]),
    };
  }

  /**
   * The name Octavia's agent gives a port it moves into its namespace (its
   * controller stores it as the amphora's vrrp_interface, operators see it):
   * eth1 for the VIP port, eth<number of links already there> for others
   * (lo and eth1 make the first member port eth2).
   */
  private async octaviaName(kind: "vip" | "network"): Promise<string> {
    return kind === "vip" ? "eth1" : `eth${(await this.ip.links()).length}`;
  }

  /** What has been plugged, as recorded. */
  async state(): Promise<PluggedState> {
    try {
      return JSON.parse(await readFile(this.stateFile, "utf8")) as PluggedState;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, interfaces: {} };
      throw e;
    }
  }

  /**
   * Applies every recorded plug again (after a reboot or an interface
   * flap). Plans are recomputed because interface indexes, and so table
   * numbers, may have changed. Returns the interfaces done and the failures.
   */
  reapply(o: { bindHost?: string } = {}): Promise<{ applied: string[]; failures: { mac: string; error: string }[]; refused: { mac: string; why: string }[] }> {
    return this.serial(async () => {
      const applied: string[] = [];
      const failures: { mac: string; error: string }[] = [];
      const refused: { mac: string; why: string }[] = [];
      const st = await this.state();
      for (const [mac, e] of Object.entries(st.interfaces)) {
        try {
          // A recorded plug of the management interface (made before this
          // check existed) would lock the controller out at every boot.
          const mgmt = await this.carriesManagement(mac, o.bindHost ?? "");
          if (mgmt) {
            refused.push({ mac, why: `recorded plug of ${mgmt.ifname} (${mac}) not restored: it carries the agent's management address ${mgmt.address}` });
            continue;
          }
          // After a reboot hot-plugged ports are back in the source namespace.
          const { link, moveBack } = await this.findOrAdopt(mac, async () => e.ifname);
          try {
            const table = tableFor(link.ifindex);
            const plan = e.kind === "vip" ? planVip(e.spec as VipSpec, table, this.topology()) : planNetwork(e.spec as NetworkSpec, table, this.topology());
            const { stale: _done, ...rest } = e;
            await this.commit(link, plan, "Error re-applying plugged interface", e.kind, e, { ...rest, ifname: link.ifname, table, plan });
            applied.push(link.ifname);
          } catch (err) {
            await moveBack?.();
            throw err;
          }
        } catch (err) {
          failures.push({ mac, error: err instanceof DomainError ? `${err.message}: ${err.details}` : String(err) });
        }
      }
      return { applied, failures, refused };
    });
  }

  private async findLink(mac: string): Promise<IpLink> {
    const link = await this.ip.linkByMac(mac);
    if (!link) throw notFound(
      "No suitable network interface found",
      // The controller retries a plug while the port is not there yet, and
      // recognises that case by this phrase in the details.
      `No suitable network interface found: no interface with MAC address ${mac}`,
      "INTERFACE_NOT_FOUND",
    );
    return link;
  }

  private async record(mac: string, entry: PluggedEntry): Promise<void> {
    const st = await this.state();
    st.interfaces[mac.toLowerCase()] = entry;
    await writeFileAtomic(this.stateFile, JSON.stringify(st, null, 2) + "\n", 0o600);
  }

  /**
   * Applies `plan` on `link`. On failure every step this call made is undone
   * in reverse order and a `failed` error carries ip's message. On success
   * the undo steps are returned, for a failure of what follows (commit()).
   */
  private async applyWithRollback(link: IpLink, plan: InterfacePlan, message: string): Promise<Undo[]> {
    const undo: Undo[] = [];
    const seen: Listings = { routes: new Map(), rules: new Map() };
    const dev = link.ifname;
    try {
      // Without this, deleting an interface's first IPv4 address (a stale
      // VRRP address, say) silently deletes every other one with it.
      await this.ip.promoteSecondaries(dev);
      if (plan.mtu !== undefined && plan.mtu !== link.mtu) {
        await this.ip.exec(["link", "set", "dev", dev, "mtu", String(plan.mtu)]);
        undo.push(() => this.ip.tryExec(["link", "set", "dev", dev, "mtu", String(link.mtu)]));
      }
      if (!link.flags.includes("UP")) {
        await this.ip.exec(["link", "set", "dev", dev, "up"]);
        undo.push(() => this.ip.tryExec(["link", "set", "dev", dev, "down"]));
      }
      const have = new Set<string>();
      for (const a of (await this.ip.addrs(dev)).flatMap((x) => x.addr_info ?? [])) {
        if (a.family === "inet" || a.family === "inet6") have.add(`${normalizeIp(a.local)}/${a.prefixlen}`);
      }
      for (const a of plan.addresses) {
        if (have.has(addrKey(a))) continue;
        const extra = familyOf(a.ip) === 6 ? ["nodad"] : [];
        await this.ip.exec(["addr", "add", `${a.ip}/${a.prefixlen}`, "dev", dev, ...extra]);
        undo.push(() => this.ip.tryExec(["addr", "del", `${a.ip}/${a.prefixlen}`, "dev", dev]));
      }
      for (const r of plan.routes) {
        const existing = await this.findRoute(r, seen);
        if (existing && this.sameRoute(existing, r, dev)) continue;
        await this.ip.exec(this.routeArgs("replace", r, dev));
        undo.push(() =>
          existing
            ? this.ip.tryExec([`-${r.family}`, "route", "replace", r.dst, ...(existing.gateway ? ["via", existing.gateway] : []),
              ...(existing.dev ? ["dev", existing.dev] : []), "table", r.table, ...(existing.flags?.includes("onlink") ? ["onlink"] : [])])
            : this.ip.tryExec([`-${r.family}`, "route", "del", r.dst, "table", r.table]),
        );
      }
      for (const rule of plan.rules) {
        if (await this.hasRule(rule, seen)) continue;
        await this.ip.exec(this.ruleArgs("add", rule));
        undo.push(() => this.ip.tryExec(this.ruleArgs("del", rule)));
      }
    } catch (e) {
      for (const u of undo.reverse()) await u().catch(() => {});
      const detail = e instanceof DomainError ? e.details || e.message : String(e);
      throw failed(message, detail, "PLUG_FAILED");
    }
    return undo;
  }

  /** Removes what `old` (an earlier plan of this port) added and `plan` does not contain, so re-plugging converges on exactly the new state. */
  private async removeStale(link: IpLink, plan: InterfacePlan, old: InterfacePlan): Promise<void> {
    const prev = { plan: old };
    const dev = link.ifname;
    const addrs = new Set(plan.addresses.map(addrKey));
    const routes = new Set(plan.routes.map(routeKey));
    const rules = new Set(plan.rules.map(ruleKey));
    for (const r of prev.plan.rules) if (!rules.has(ruleKey(r))) await this.ip.tryExec(this.ruleArgs("del", r));
    for (const r of prev.plan.routes) {
      if (routes.has(routeKey(r))) continue;
      const existing = await this.findRoute(r).catch(() => undefined);
      if (existing && this.sameRoute(existing, r, dev)) await this.ip.tryExec([`-${r.family}`, "route", "del", r.dst, "table", r.table]);
    }
    for (const a of prev.plan.addresses) if (!addrs.has(addrKey(a))) await this.ip.tryExec(["addr", "del", `${a.ip}/${a.prefixlen}`, "dev", dev]);
    this.logger.debug({ dev }, "removed state of the previous plug that the new one does not want");
  }

  private routeArgs(verb: "replace" | "del", r: PlannedRoute, dev: string): string[] {
    return [`-${r.family}`, "route", verb, r.dst, ...(r.via ? ["via", r.via] : []), "dev", dev, "table", r.table, ...(r.onlink ? ["onlink"] : [])];
  }

  private ruleArgs(verb: "add" | "del", r: PlannedRule): string[] {
    return [`-${r.family}`, "rule", verb, "from", r.from, "table", r.table, "priority", String(r.priority)];
  }

  /**
   * Looks routes up in a listing read once per table and family per apply
   * (`seen`): each `ip` run in a namespace costs milliseconds, and the steps
   * of one apply never change a route that a later step of it looks at.
   */
  private async findRoute(r: PlannedRoute, seen?: Listings): Promise<IpRoute | undefined> {
    const key = `${r.family}|${r.table}`;
    let routes = seen?.routes.get(key);
    if (!routes) {
      routes = await this.ip.routes(r.family, r.table);
      seen?.routes.set(key, routes);
    }
    return routes.find((x) => canonicalDst(x.dst, r.family) === r.dst && !(x as { type?: string }).type);
  }

  private sameRoute(x: IpRoute, r: PlannedRoute, dev: string): boolean {
    return x.dev === dev && normalizeIp(x.gateway ?? "") === normalizeIp(r.via ?? "") && !!x.flags?.includes("onlink") === !!r.onlink;
  }

  private async hasRule(r: PlannedRule, seen?: Listings): Promise<boolean> {
    const [addr, len] = r.from.split("/");
    let rules = seen?.rules.get(r.family);
    if (!rules) {
      rules = await this.ip.rules(r.family);
      seen?.rules.set(r.family, rules);
    }
    return rules.some(
      (x) => x.priority === r.priority && x.table === r.table && x.src !== undefined &&
        normalizeIp(x.src) === normalizeIp(addr!) && (x.srclen ?? (r.family === 4 ? 32 : 128)) === Number(len),
    );
  }
}
