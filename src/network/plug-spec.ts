// What a plug request asks for, checked and turned into the concrete state
// an interface must have: MTU, addresses, routes (main table and the
// interface's own policy-routing table) and `ip rule`s. Pure functions, so
// the translation is tested without touching any namespace.
import { invalid } from "../errors.js";
import { familyOf, parsePrefix, prefixContains, type Prefix } from "./cidr.js";

export interface HostRouteSpec {
  destination: string;
  nexthop: string;
}

export interface AdditionalVipSpec {
  subnetCidr: string;
  gateway: string;
  ipAddress: string;
  hostRoutes: HostRouteSpec[];
}

export interface VipSpec {
  vip: string;
  subnetCidr: string;
  gateway: string;
  macAddress: string;
  mtu?: number;
  vrrpIp: string;
  hostRoutes: HostRouteSpec[];
  additionalVips: AdditionalVipSpec[];
}

export interface FixedIpSpec {
  ipAddress: string;
  subnetCidr: string;
  gateway: string;
  hostRoutes: HostRouteSpec[];
}

export interface NetworkSpec {
  macAddress: string;
  fixedIps: FixedIpSpec[];
  mtu?: number;
  /** Set when the member port sits on the VIP network: the port also carries the VIP setup. */
  vipNetInfo?: Omit<VipSpec, "additionalVips">;
}

export interface PlannedAddress {
  ip: string;
  prefixlen: number;
}

export interface PlannedRoute {
  family: 4 | 6;
  /** "main" or the interface's table number as text. */
  table: string;
  /** Canonical prefix, "0.0.0.0/0" for the default route. */
  dst: string;
  via?: string;
  onlink?: boolean;
}

export interface PlannedRule {
  family: 4 | 6;
  /** Canonical "ADDR/LEN". */
  from: string;
  table: string;
  priority: number;
}

export interface InterfacePlan {
  mtu?: number;
  addresses: PlannedAddress[];
  routes: PlannedRoute[];
  rules: PlannedRule[];
}

/** Rule priority of source-based routing entries (the value Octavia uses). */
export const RULE_PRIORITY = 100;

/**
 * Policy-routing table of an interface. Derived from the interface index so
 * two plugged interfaces never share a table and a re-plug reuses the same one.
 */
export function tableFor(ifindex: number): string {
  return String(1000 + ifindex);
}

const hostLen = (ip: string) => (familyOf(ip) === 4 ? 32 : 128);

function subnet(cidr: string, message: string): Prefix {
  const p = parsePrefix(cidr, true);
  if (!p) throw invalid(message, `not a subnet CIDR (host bits must be zero): ${JSON.stringify(cidr)}`);
  return p;
}

function checkGateway(gw: string, net: Prefix, message: string) {
  if (gw && familyOf(gw) !== net.family) throw invalid(message, `gateway ${gw} is not an IPv${net.family} address`);
}

function hostRoutes(routes: HostRouteSpec[], family: 4 | 6, table: string, message: string): PlannedRoute[] {
  return routes.map((r) => {
    const dst = parsePrefix(r.destination, false);
    if (!dst || dst.family !== family || familyOf(r.nexthop) !== family) {
      throw invalid(message, `host route ${r.destination} via ${r.nexthop} does not match the subnet's IP version`);
    }
    return { family, table, dst: dst.text, via: r.nexthop, onlink: true };
  });
}

function defaultRoute(family: 4 | 6, table: string, gateway: string): PlannedRoute {
  return { family, table, dst: family === 4 ? "0.0.0.0/0" : "::/0", via: gateway, onlink: true };
}

function dedupe<T>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    const k = JSON.stringify(i);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * State for the VIP interface. In ACTIVE_STANDBY with a VRRP address the VIPs
 * themselves are left to keepalived (it adds them on the MASTER only), so
 * only the VRRP address is configured here; routes and rules are the same in
 * both topologies, they are harmless while the VIP is absent.
 */
export function planVip(spec: Omit<VipSpec, "macAddress">, table: string, topology: "SINGLE" | "ACTIVE_STANDBY"): InterfacePlan {
  if (!familyOf(spec.vip)) throw invalid("Invalid VIP", `not an IP address: ${JSON.stringify(spec.vip)}`);
  const net = subnet(spec.subnetCidr, "Invalid subnet information");
  if (!prefixContains(net, spec.vip)) throw invalid("Invalid VIP", `${spec.vip} is not inside subnet ${net.text}`);
  checkGateway(spec.gateway, net, "Invalid subnet information");
  if (spec.vrrpIp && !prefixContains(net, spec.vrrpIp)) {
    throw invalid("Invalid VIP", `VRRP address ${spec.vrrpIp} is not inside subnet ${net.text}`);
  }
  const keepalivedOwnsVips = topology === "ACTIVE_STANDBY" && !!spec.vrrpIp;
  const addresses: PlannedAddress[] = [];
  const routes: PlannedRoute[] = [];
  const rules: PlannedRule[] = [];
  if (spec.vrrpIp) addresses.push({ ip: spec.vrrpIp, prefixlen: net.prefixlen });
  const vips = [{ ip: spec.vip, net, gateway: spec.gateway, hostRoutes: spec.hostRoutes }];
  for (const a of spec.additionalVips) {
    const anet = subnet(a.subnetCidr, "Invalid subnet information");
    if (!familyOf(a.ipAddress) || !prefixContains(anet, a.ipAddress)) {
      throw invalid("Invalid VIP", `additional VIP ${a.ipAddress} is not inside subnet ${anet.text}`);
    }
    checkGateway(a.gateway, anet, "Invalid subnet information");
    vips.push({ ip: a.ipAddress, net: anet, gateway: a.gateway, hostRoutes: a.hostRoutes });
  }
  const defaults = new Set<number>();
  for (const v of vips) {
    if (!keepalivedOwnsVips) addresses.push({ ip: v.ip, prefixlen: v.net.prefixlen });
    // Replies from the VIP leave through this interface whatever the main table says.
    routes.push({ family: v.net.family, table, dst: v.net.text });
    if (v.gateway && !defaults.has(v.net.family)) {
      defaults.add(v.net.family);
      routes.push(defaultRoute(v.net.family, table, v.gateway));
      routes.push(defaultRoute(v.net.family, "main", v.gateway));
    }
    routes.push(...hostRoutes(v.hostRoutes, v.net.family, table, "Invalid subnet information"));
    routes.push(...hostRoutes(v.hostRoutes, v.net.family, "main", "Invalid subnet information"));
    rules.push({ family: v.net.family, from: `${v.ip}/${hostLen(v.ip)}`, table, priority: RULE_PRIORITY });
  }
  return { mtu: spec.mtu, addresses: dedupe(addresses), routes: dedupe(routes), rules: dedupe(rules) };
}

/** State for a member port: its fixed IPs, host routes, and source routing for fixed IPs with a gateway. */
export function planNetwork(spec: NetworkSpec, table: string, topology: "SINGLE" | "ACTIVE_STANDBY"): InterfacePlan {
  const plan: InterfacePlan = spec.vipNetInfo
    ? planVip({ ...spec.vipNetInfo, additionalVips: [] }, table, topology)
    : { addresses: [], routes: [], rules: [] };
  plan.mtu = spec.mtu ?? plan.mtu;
  for (const f of spec.fixedIps) {
    const net = parsePrefix(f.subnetCidr, true);
    if (!net) throw invalid("Invalid port information", `not a subnet CIDR: ${JSON.stringify(f.subnetCidr)}`);
    if (!familyOf(f.ipAddress) || !prefixContains(net, f.ipAddress)) {
      throw invalid("Invalid port information", `${f.ipAddress} is not inside subnet ${net.text}`);
    }
    checkGateway(f.gateway, net, "Invalid port information");
    plan.addresses.push({ ip: f.ipAddress, prefixlen: net.prefixlen });
    plan.routes.push(...hostRoutes(f.hostRoutes, net.family, "main", "Invalid port information"));
    if (f.gateway) {
      plan.routes.push({ family: net.family, table, dst: net.text });
      plan.routes.push(defaultRoute(net.family, table, f.gateway));
      plan.rules.push({ family: net.family, from: `${f.ipAddress}/${hostLen(f.ipAddress)}`, table, priority: RULE_PRIORITY });
    }
  }
  return { mtu: plan.mtu, addresses: dedupe(plan.addresses), routes: dedupe(plan.routes), rules: dedupe(plan.rules) };
}
