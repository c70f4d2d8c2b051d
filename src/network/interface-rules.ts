// The allow-list firewall of one interface as an nftables table of its own.
// The whole table is replaced in one `nft -f` transaction (create, delete,
// define), so a bad rule set changes nothing and there is never a moment
// without rules. A copy of what was loaded is kept in
// <stateDir>/network/rules/<ifname>.nft.
//
// Design choice: an `input` hook (not `ingress`) filtered on iifname, so
// conntrack is available: replies to connections haproxy opens (health
// checks, members reached through this interface) are admitted without a
// rule each, and ARP is never affected.
import { isIP } from "node:net";
import { failed, invalid } from "../errors.js";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { run, runChecked } from "../system/exec.js";
import { safeJoin, writeFileAtomic } from "../system/fs-atomic.js";
import type { Logger } from "../log.js";
import { parsePrefix } from "./cidr.js";
import { KeyedLock } from "../system/keyed-lock.js";
import { interfaceForIp, listAddresses, normalizeIp } from "./interfaces.js";

export type RuleProtocol = "TCP" | "UDP" | "SCTP" | "VRRP";

export interface InterfaceRule {
  protocol: string;
  /** Source prefix; empty/undefined admits every source. */
  cidr?: string;
  port: number;
}

const IFNAME = /^[A-Za-z0-9_.@-]{1,15}$/;

/**
 * nftables table name for an interface. Identifiers allow only [A-Za-z0-9_],
 * and the name must be injective (eth1.100, eth1-100 and eth1_100 are three
 * interfaces, so three tables): `_` is doubled and every other character
 * becomes `_` plus two hex digits (`.` -> `_2e`, `-` -> `_2d`, `@` -> `_40`).
 * A `_` is then always followed by `_` or a hex digit, so decoding is unique.
 */
export function tableName(ifname: string): string {
  const enc = ifname.replace(/[^A-Za-z0-9]/g, (c) => (c === "_" ? "__" : `_${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  return `amphora_rules_${enc}`;
}

const RULES_INVALID = "Invalid rules information";

/**
 * Refuses rule sets that could cut the agent off from its controller. A
 * table is a default-drop allow-list, re-loaded at every start, so one on
 * the wrong interface would lock the management port out for good:
 * - `lo` never (local traffic of haproxy, keepalived and the agent);
 * - the interface that carries the agent's bind address (bind_host), when
 *   the agent binds one address and that address is in the rules' namespace;
 * - any interface when there is no load-balancer namespace (netns ""): the
 *   rules would then land in the agent's own namespace, where every
 *   interface may carry management traffic (with bind_host 0.0.0.0 the
 *   agent listens on all of them). Dev mode gets no exception: a dev agent
 *   on a workstation would firewall the workstation. Rules are for the
 *   load-balancer namespace (amphora_network_namespace) only.
 */
export async function checkRulesTarget(ifname: string, netns: string, bindHost: string): Promise<void> {
  if (!netns) {
    throw invalid(RULES_INVALID, `refusing rules for ${ifname}: the agent has no load-balancer network namespace (amphora_network_namespace is empty), and rules in the agent's own namespace could block its management port`, "PROTECTED_INTERFACE");
  }
  if (ifname === "lo") throw invalid(RULES_INVALID, "refusing rules for the loopback interface lo", "PROTECTED_INTERFACE");
  const bindIf = await interfaceCarrying(bindHost, netns);
  if (bindIf === ifname) {
    throw invalid(RULES_INVALID, `refusing rules for ${ifname}: it carries the agent's bind address ${bindHost}`, "PROTECTED_INTERFACE");
  }
}

/** The interface of `netns` that carries `host`; undefined for wildcard/unknown addresses. */
export async function interfaceCarrying(host: string, netns: string): Promise<string | undefined> {
  if (!isIP(host) || host === "0.0.0.0" || host === "::" || host.includes("%")) return undefined;
  const want = normalizeIp(host);
  for (const link of await listAddresses(netns)) {
    if ((link.addr_info ?? []).some((a) => normalizeIp(a.local) === want)) return link.ifname;
  }
  return undefined;
}

/** PUT /interface/{ip}/rules: finds the interface of `ip`, refuses protected ones, loads the rules. */
export async function setRulesForIp(o: {
  ip: string; netns: string; stateDir: string; bindHost: string; rules: InterfaceRule[]; logger?: Logger;
}): Promise<{ ifname: string }> {
  const ifname = await interfaceForIp(o.ip, o.netns);
  await checkRulesTarget(ifname, o.netns, o.bindHost);
  await applyInterfaceRules(o.netns, o.stateDir, ifname, o.rules, o.logger);
  return { ifname };
}

function ruleLine(r: InterfaceRule): string {
  const proto = r.protocol.toUpperCase();
  let source = "";
  if (r.cidr) {
    const p = parsePrefix(r.cidr, false);
    if (!p) throw invalid("Invalid rules information", `not an IP prefix: ${JSON.stringify(r.cidr)}`);
    // A /0 admits every source of both families, as the controller means it.
    if (p.prefixlen > 0) source = `${p.family === 4 ? "ip" : "ip6"} saddr ${p.text} `;
  }
  if (proto === "VRRP") return `${source}meta l4proto vrrp accept`;
  if (proto !== "TCP" && proto !== "UDP" && proto !== "SCTP") {
    throw invalid("Invalid rules information", `unknown protocol ${JSON.stringify(r.protocol)} (TCP, UDP, SCTP or VRRP)`);
  }
  if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) {
    throw invalid("Invalid rules information", `port must be 1..65535 for ${proto}, got ${r.port}`);
  }
  return `${source}${proto.toLowerCase()} dport ${r.port} accept`;
}

/** The nft script that replaces the interface's table with exactly `rules`. */
export function renderRuleset(ifname: string, rules: InterfaceRule[]): string {
  if (!IFNAME.test(ifname)) throw invalid(RULES_INVALID, `bad interface name ${JSON.stringify(ifname)}`);
  const t = tableName(ifname);
  const lines = rules.map(ruleLine);
  return [
    `# Rules for interface ${ifname}, written by amphora-agent.`,
    // Creating first makes the delete valid when the table does not exist yet.
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  chain input {`,
    `    type filter hook input priority filter; policy accept;`,
    `    iifname != "${ifname}" accept`,
    `    ct state established,related accept`,
    `    ct state invalid drop`,
    // Path-MTU discovery and IPv6 neighbour discovery must keep working.
    `    icmp type { destination-unreachable, time-exceeded } accept`,
    `    icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept`,
    // DHCP replies, in case the port's address comes from DHCP.
    `    udp sport 67 udp dport 68 accept`,
    `    udp sport 547 udp dport 546 accept`,
    ...lines.map((l) => `    ${l}`),
    `    drop`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

/**
 * Loads every stored rule set again (after a reboot the namespace has no
 * nftables tables, and an interface that lost its rules would be open).
 * Interfaces that do not exist (yet) are reported, not fatal.
 */
export async function reloadStoredRules(netns: string, stateDir: string, logger?: Logger): Promise<{ loaded: string[]; failures: { ifname: string; error: string }[] }> {
  const dir = safeJoin(stateDir, "network", "rules");
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(".nft"));
  const loaded: string[] = [];
  const failures: { ifname: string; error: string }[] = [];
  for (const f of files) {
    const ifname = f.slice(0, -4);
    // A file that could only have been written before these interfaces were
    // protected (or with another namespace setting) must not lock the agent out at every start.
    if (!netns || ifname === "lo") {
      failures.push({ ifname, error: !netns ? "not loaded: no load-balancer network namespace is configured" : "not loaded: lo is never firewalled" });
      continue;
    }
    const r = await interfaceLock.run(`${netns}\0${ifname}`, () => run("nft", ["-f", join(dir, f)], { netns, timeoutMs: 10_000, logger }));
    if (r.exitCode === 0) loaded.push(ifname);
    else failures.push({ ifname, error: (r.stderr || r.stdout).trim() });
  }
  return { loaded, failures };
}

/**
 * One interface's load and record happen one at a time: two concurrent PUTs
 * could otherwise interleave as load A, load B, record B, record A, leaving
 * the kernel with B and the file (re-loaded at the next start) with A.
 * Per process, keyed by namespace and interface; other interfaces proceed.
 */
const interfaceLock = new KeyedLock();

export function applyInterfaceRules(
  netns: string, stateDir: string, ifname: string, rules: InterfaceRule[], logger?: Logger,
): Promise<string> {
  const script = renderRuleset(ifname, rules);
  return interfaceLock.run(`${netns}\0${ifname}`, () => loadAndRecord(netns, stateDir, ifname, script, logger));
}

async function loadAndRecord(netns: string, stateDir: string, ifname: string, script: string, logger?: Logger): Promise<string> {
  try {
    await runChecked("nft", ["-f", "-"], { netns, input: script, timeoutMs: 10_000, logger });
  } catch (e) {
    // The script is generated from checked input, so a refusal is the system's fault.
    const d = (e as { details?: string }).details ?? String(e);
    throw failed("Failed to load interface rules", d, "NFT_FAILED");
  }
  await writeFileAtomic(safeJoin(stateDir, "network", "rules", `${ifname}.nft`), script, 0o600);
  return script;
}
