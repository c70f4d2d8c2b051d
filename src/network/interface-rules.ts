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
import { failed, invalid } from "../errors.js";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { run, runChecked } from "../system/exec.js";
import { safeJoin, writeFileAtomic } from "../system/fs-atomic.js";
import type { Logger } from "../log.js";
import { parsePrefix } from "./cidr.js";

export type RuleProtocol = "TCP" | "UDP" | "SCTP" | "VRRP";

export interface InterfaceRule {
  protocol: string;
  /** Source prefix; empty/undefined admits every source. */
  cidr?: string;
  port: number;
}

const IFNAME = /^[A-Za-z0-9_.@-]{1,15}$/;

/** nftables table name for an interface: identifiers allow only [A-Za-z0-9_]. */
export function tableName(ifname: string): string {
  return `amphora_rules_${ifname.replace(/[^A-Za-z0-9_]/g, "_")}`;
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
  if (!IFNAME.test(ifname)) throw invalid("Invalid rules information", `bad interface name ${JSON.stringify(ifname)}`);
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
    const r = await run("nft", ["-f", join(dir, f)], { netns, timeoutMs: 10_000, logger });
    if (r.exitCode === 0) loaded.push(ifname);
    else failures.push({ ifname, error: (r.stderr || r.stdout).trim() });
  }
  return { loaded, failures };
}

export async function applyInterfaceRules(
  netns: string, stateDir: string, ifname: string, rules: InterfaceRule[], logger?: Logger,
): Promise<string> {
  const script = renderRuleset(ifname, rules);
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
