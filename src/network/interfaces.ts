// Reads interfaces and addresses with `ip -j addr`.
import { isIP } from "node:net";
import { invalid, notFound } from "../errors.js";
import { runChecked } from "../system/exec.js";
import { namespaceExists } from "./namespace.js";

export interface IpAddrEntry {
  ifname: string;
  address?: string;
  operstate?: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

export async function listAddresses(netns = ""): Promise<IpAddrEntry[]> {
  // Before the first plug creates the load-balancer namespace it holds no
  // interface: a lookup is "not found" (404, as Octavia's agent answers),
  // not a failed `ip netns exec` (500).
  if (!namespaceExists(netns)) return [];
  const r = await runChecked("ip", ["-j", "addr", "show"], { netns, timeoutMs: 5000 });
  return JSON.parse(r.stdout || "[]") as IpAddrEntry[];
}

/** Normalises an IPv6 address so "2001:db8::1" and "2001:DB8:0::1" compare equal. */
export function normalizeIp(ip: string): string {
  // A zone id (fe80::1%lo) makes URL parsing throw; such an address is compared as written.
  if (isIP(ip) !== 6 || ip.includes("%")) return ip.toLowerCase();
  // URL parsing yields the canonical compressed form.
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** The interface that carries `ip`, in the given namespace. */
export async function interfaceForIp(ip: string, netns = ""): Promise<string> {
  if (!isIP(ip)) throw invalid("Invalid IP address", ip);
  // isIP (and protovalidate's string.ip) accept zone ids; interface addresses have none.
  if (ip.includes("%")) throw invalid("Invalid IP address", `${ip}: zone ids (%...) are not accepted`);
  const want = normalizeIp(ip);
  for (const link of await listAddresses(netns)) {
    for (const a of link.addr_info ?? []) {
      if (normalizeIp(a.local) === want) return link.ifname;
    }
  }
  throw notFound("Error interface not found for IP address", ip);
}
