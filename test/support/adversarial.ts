// Hostile request bodies at each route's size limit, and a measure of how
// long the event loop was blocked while the agent handled them. Shared by
// the freeze test (test/agent/upload-freeze.test.ts) and its benchmark
// (bench/upload-parsers.ts), so both send the same inputs.
//
// Each pattern targets a way a parser can go quadratic: an opening marker
// repeated without its closing one (regex block scanners that rescan to the
// end for every opener), one very long line (lazy/greedy quantifiers that
// backtrack per start position), long runs of one character class.

/** `unit` repeated to exactly `size` bytes (ASCII units). */
export function fill(unit: string, size: number): string {
  return unit.repeat(Math.floor(size / unit.length)) + unit.slice(0, size % unit.length);
}

/** Text bodies: name -> body of `size` bytes. */
export function textPatterns(size: number): Record<string, string> {
  return {
    "BEGIN lines": fill("-----BEGIN A-----\n", size),
    "BEGIN CERTIFICATE lines": fill("-----BEGIN CERTIFICATE-----\n", size),
    "BEGIN without newline": fill("-----BEGIN A-----", size),
    "vrrp_script openers": fill("vrrp_script a {\n", size),
    "virtual_ipaddress openers": fill("virtual_ipaddress {\n", size),
    "virtual_server openers": fill("virtual_server 192.0.2.1 80 {\n", size),
    "script lines": fill("  script a\n", size),
    "one line of spaces": fill(" ", size - 1) + "x",
    "one line of letters": fill("a", size),
    "one line of digits": fill("1", size),
    "one line of colons": fill("1:", size),
    "hashes and spaces": fill(" #", size),
    "brackets": fill("[", size),
    "braces": fill("{", size),
    "quotes": fill("\"'", size),
    "section headers": fill("frontend a\n", size),
    "bind ssl crt": fill(" bind :1 ssl crt /a\n", size),
    "include lines": fill("include a\n", size),
    "key without value": fill("a ", size - 1) + "\n",
  };
}

/** JSON bodies for routes whose body is JSON: `size` bytes each. */
export function jsonPatterns(size: number, kind: "object" | "list"): Record<string, string> {
  const str = (n: number) => JSON.stringify(fill("1", n));
  const nest = Math.floor((size - 2) / 2);
  const obj = (inner: string) => (kind === "object" ? inner : `[${inner}]`);
  // Many small rules / host routes.
  const many = (item: string) => {
    const count = Math.floor((size - 20) / (item.length + 1));
    return Array(count).fill(item).join(",");
  };
  return {
    "deep arrays": fill("[", nest) + fill("]", nest),
    "deep objects": fill('{"a":', Math.floor(size / 6) * 5) ,
    "long address": obj(`{"subnet_cidr":${str(size - 40)},"cidr":"1"}`),
    "long mac": obj(`{"mac_address":${str(size - 40)}}`),
    "many host routes": kind === "object"
      ? `{"host_routes":[${many('{"destination":"192.0.2.0/24","nexthop":"192.0.2.1"}')}]}`
      : `[${many('{"protocol":"TCP","cidr":"192.0.2.0/24","port":80}')}]`,
    "long colons": obj(`{"subnet_cidr":${JSON.stringify(fill("1:", size - 40))}}`),
  };
}

/**
 * Watches the event loop of this process: `maxMs()` is the longest time a
 * 5 ms timer fired late since `reset()` (how long the loop could not run
 * anything else), counting only time this process spent on the CPU: on a
 * loaded machine a process also waits for a core, which is no block of its
 * own (an idle agent here saw 80 ms gaps under a load of 12). `maxWallMs()`
 * is the plain wall-clock lateness. A timer, not perf_hooks' histogram: that
 * one records nothing for a block of many seconds.
 */
export function eventLoopWatch(): { reset(): void; maxMs(): number; maxWallMs(): number; stop(): void } {
  const tick = 5;
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  let max = 0;
  let maxWall = 0;
  const cpuMs = (since: NodeJS.CpuUsage) => {
    const d = process.cpuUsage(since);
    return (d.user + d.system) / 1000;
  };
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - tick;
    maxWall = Math.max(maxWall, late);
    max = Math.max(max, Math.min(late, cpuMs(lastCpu)));
    last = now;
    lastCpu = process.cpuUsage();
  }, tick);
  return {
    reset: () => {
      max = 0;
      maxWall = 0;
    },
    // A block still under way when asked counts too.
    maxMs: () => Math.max(max, Math.min(performance.now() - last - tick, cpuMs(lastCpu))),
    maxWallMs: () => Math.max(maxWall, performance.now() - last - tick),
    stop: () => clearInterval(timer),
  };
}

/** A route that accepts a body, with its limit and the body kind. */
export interface BodyRoute {
  name: string;
  method: "PUT" | "POST";
  path: string;
  limit: number;
  body: "text" | "json-object" | "json-list";
}

const AMP = "6d1c5f5a-0d1b-4a53-9bb4-3f0f6a2e7c11";
const LB = "0a1b2c3d-0000-4000-8000-00000000f00d";
const LISTENER = "0a1b2c3d-0000-4000-8000-00000000beef";
const KiB = 1024;
const MiB = 1024 * KiB;

/** Every REST route that accepts a body (the proto's (rest) body option), at its limit. */
export const BODY_ROUTES: BodyRoute[] = [
  { name: "PutConfig (haproxy)", method: "PUT", path: `/1.0/loadbalancer/${AMP}/${LB}/haproxy`, limit: 8 * MiB, body: "text" },
  { name: "PutCertificate", method: "PUT", path: `/1.0/loadbalancer/${LB}/certificates/server.pem`, limit: MiB, body: "text" },
  { name: "PutUdpListenerConfig", method: "PUT", path: `/1.0/listeners/${AMP}/${LISTENER}/udp_listener`, limit: MiB, body: "text" },
  { name: "PutVrrpConfig", method: "PUT", path: "/1.0/vrrp/upload", limit: MiB, body: "text" },
  { name: "UpdateAgentConfig", method: "PUT", path: "/1.0/config", limit: 64 * KiB, body: "text" },
  { name: "RotateAgentCertificate", method: "PUT", path: "/1.0/certificate", limit: 256 * KiB, body: "text" },
  { name: "PutInterfaceRules", method: "PUT", path: "/1.0/interface/192.0.2.10/rules", limit: MiB, body: "json-list" },
  { name: "PlugVip", method: "POST", path: "/1.0/plug/vip/192.0.2.10", limit: MiB, body: "json-object" },
  { name: "PlugNetwork", method: "POST", path: "/1.0/plug/network", limit: MiB, body: "json-object" },
];

export const ADVERSARIAL_IDS = { amphoraId: AMP, lbId: LB, listenerId: LISTENER };

/** The bodies to send to `route`: every pattern of its kind at its limit. */
export function bodiesFor(route: BodyRoute): [string, string][] {
  if (route.body === "text") return Object.entries(textPatterns(route.limit));
  return Object.entries(jsonPatterns(route.limit, route.body === "json-list" ? "list" : "object"));
}
