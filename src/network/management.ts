// The addresses the agent is reached on: its specific listen address (or,
// listening on a wildcard, every address of its own namespace) and the local
// address of every connection a client (the controller) has open to it now,
// read from /proc for this process's own sockets. A plug must
// never take an interface carrying one of them: moving it into the
// load-balancer namespace (or routing through it) locks the controller out,
// and a recorded plug would repeat that after every reboot.
import { readdir, readFile, readlink } from "node:fs/promises";
import { listAddresses, normalizeIp } from "./interfaces.js";

const LISTEN = "0A";
const ESTABLISHED = "01";

export interface TcpSocket {
  local: string;
  port: number;
  state: string;
  inode: string;
}

/** An address of /proc/net/tcp{,6}: host-order 32-bit words in hex. */
export function procAddress(hex: string): string {
  if (hex.length === 8) {
    const b = Buffer.from(hex, "hex").reverse();
    return [...b].join(".");
  }
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = Buffer.concat(words.map((w) => Buffer.from(w, "hex").reverse()));
  // IPv4-mapped (::ffff:a.b.c.d): a v4 client of a dual-stack socket.
  if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return [...bytes.subarray(12)].join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return normalizeIp(groups.join(":"));
}

export function parseProcTcp(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addr, port] = f[1]!.split(":");
    out.push({ local: procAddress(addr!), port: parseInt(port!, 16), state: f[3]!, inode: f[9]! });
  }
  return out;
}

const WILDCARD = new Set(["0.0.0.0", "::"]);

/**
 * This process's specific listen addresses and the local addresses of the
 * connections clients have open to its listening ports. Reads this
 * process's own namespace (where the agent serves).
 */
export async function addressesReachedOn(): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const fd of await readdir("/proc/self/fd").catch(() => [] as string[])) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/self/fd/${fd}`).catch(() => ""));
    if (m) inodes.add(m[1]!);
  }
  const sockets = (await Promise.all(["/proc/self/net/tcp", "/proc/self/net/tcp6"].map((f) => readFile(f, "utf8").catch(() => ""))))
    .flatMap(parseProcTcp)
    .filter((s) => inodes.has(s.inode));
  const listening = sockets.filter((s) => s.state === LISTEN);
  const ports = new Set(listening.map((s) => s.port));
  const out = new Set<string>();
  for (const s of listening) if (!WILDCARD.has(s.local)) out.add(s.local);
  for (const s of sockets) if (s.state === ESTABLISHED && ports.has(s.port)) out.add(s.local);
  return out;
}

/**
 * The addresses the agent is reached on: what it is reached on now, plus
 * `bindHost` when it names one address. With a wildcard `bindHost` (Octavia's
 * default is "::") the agent is reachable on every address of its own
 * namespace: all of them count (global scope; loopback and link-local never
 * carry the controller's traffic, and a bare hot-plugged port has none).
 * This is what lets a start, before any connection exists, still recognise
 * the management interface.
 */
export async function managementAddresses(bindHost = ""): Promise<Set<string>> {
  const out = await addressesReachedOn();
  if (bindHost && !WILDCARD.has(bindHost)) {
    out.add(normalizeIp(bindHost));
  } else if (WILDCARD.has(bindHost)) {
    const families = bindHost === "0.0.0.0" ? ["inet"] : ["inet", "inet6"];
    for (const link of await listAddresses("")) {
      for (const a of link.addr_info ?? []) {
        if (families.includes(a.family) && (a.scope ?? "global") === "global") out.add(normalizeIp(a.local));
      }
    }
  }
  for (const a of [...out]) if (a.startsWith("127.") || a === "::1") out.delete(a); // loopback is refused on its own
  return out;
}
