// IP prefixes as numbers, so "is this address inside that subnet" is exact
// for IPv4 and IPv6 without string tricks.
import { isIP } from "node:net";

export interface Prefix {
  family: 4 | 6;
  /** Network address (host bits cleared) as a bigint. */
  network: bigint;
  prefixlen: number;
  /** Canonical text form, e.g. "192.0.2.0/24". */
  text: string;
}

/** The address as a bigint (128 bits for IPv6, 32 for IPv4); throws if not an IP. */
export function ipToBigInt(ip: string): bigint {
  const fam = isIP(ip);
  if (fam === 4) return ip.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  if (fam === 6) {
    let s = ip;
    // An embedded IPv4 tail ("::ffff:192.0.2.1") becomes two hex groups.
    const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
    if (v4) {
      const n = ipToBigInt(v4[1]!);
      s = s.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
    }
    const groups = (part: string) => (part ? part.split(":").map((h) => BigInt(parseInt(h, 16))) : []);
    let all: bigint[];
    if (s.includes("::")) {
      const [head, rest] = s.split("::") as [string, string];
      const h = groups(head);
      const r = groups(rest);
      all = [...h, ...Array<bigint>(8 - h.length - r.length).fill(0n), ...r];
    } else {
      all = groups(s);
    }
    return all.reduce((acc, g) => (acc << 16n) | g, 0n);
  }
  throw new Error(`not an IP address: ${ip}`);
}

function bigIntToIp(n: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/**
 * Parses "ADDR/LEN". With `strict`, host bits must be zero (as a subnet's
 * CIDR from Neutron always is); returns undefined for anything malformed.
 */
export function parsePrefix(cidr: string, strict = true): Prefix | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  if (!m) return undefined;
  const fam = isIP(m[1]!);
  if (fam !== 4 && fam !== 6) return undefined;
  const family = fam as 4 | 6;
  const bits = family === 4 ? 32 : 128;
  const prefixlen = Number(m[2]);
  if (prefixlen > bits) return undefined;
  const addr = ipToBigInt(m[1]!);
  const hostMask = (1n << BigInt(bits - prefixlen)) - 1n;
  const network = addr & ~hostMask & ((1n << BigInt(bits)) - 1n);
  if (strict && network !== addr) return undefined;
  return { family, network, prefixlen, text: `${bigIntToIp(network, family)}/${prefixlen}` };
}

/** True when `ip` is an address of the same family inside `prefix`. */
export function prefixContains(prefix: Prefix, ip: string): boolean {
  if (isIP(ip) !== prefix.family) return false;
  const bits = prefix.family === 4 ? 32 : 128;
  const hostMask = (1n << BigInt(bits - prefix.prefixlen)) - 1n;
  return (ipToBigInt(ip) & ~hostMask & ((1n << BigInt(bits)) - 1n)) === prefix.network;
}

export function familyOf(ip: string): 4 | 6 | 0 {
  return isIP(ip) as 4 | 6 | 0;
}
