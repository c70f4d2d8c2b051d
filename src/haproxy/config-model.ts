// A haproxy config as sections of normalized lines, and the comparison of
// two of them that decides whether the running process can be brought to the
// new config through haproxy's runtime API (issue 13 part 1) or needs a
// reload. Linear in the size of both configs.
//
// What is runtime-changeable comes from haproxy 2.6's management guide
// (doc/management.txt, "add server", "del server", "set server", "set
// weight") and from trying it on haproxy 2.6.12:
// - a server's weight: `set server B/S weight N`, only in a backend with a
//   dynamic load-balancing algorithm (static ones accept only 0 and 100%);
// - its admin state, `disabled` in the config: `set server B/S state maint|ready`;
// - its address and port (IP literals only): `set server B/S addr A port P`;
// - adding a server to an existing backend with a dynamic algorithm, with
//   only the keywords `add server` accepts in 2.6 (no `cookie`, no
//   `default-server` inheritance, ...); it comes up in maintenance with its
//   checks off, so it is enabled as the config says;
// - removing a server (maintenance first; refused while it has connections).
// Everything else — any other line of any section, a section added, removed
// or reordered, another keyword of a server — needs a reload.

/** One section: its header line and its body lines, normalized (comments and blank lines dropped). */
export interface Section {
  /** e.g. "global", "defaults", "backend pool:listener". */
  header: string;
  type: string;
  name: string;
  /** Body lines in order, server lines of backends excluded. */
  lines: string[];
  /** Servers of a backend section, by name (in config order). */
  servers: Map<string, ServerLine>;
}

export interface ServerLine {
  name: string;
  /** The address token as written (e.g. "192.0.2.1:80"). */
  target: string;
  /** IP literal and numeric port, when the target is one (runtime address changes need both). */
  ip?: string;
  port?: number;
  weight: number;
  disabled: boolean;
  /** The other keywords with their arguments, normalized and in order. */
  options: string[];
  /** Set when a keyword is unknown or one `add server` refuses in 2.6 (the first one). */
  notAddable?: string;
  /** Checks to switch on after `add server` (they start off). */
  check: boolean;
  agentCheck: boolean;
}

export interface ConfigModel {
  sections: Section[];
}

/** Words that open a section (haproxy 2.6). */
const SECTION_WORDS = new Set([
  "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist", "mailers",
  "program", "http-errors", "ring", "cache", "fcgi-app", "dynamic-update",
]);

/**
 * Splits a line into words as haproxy does for comparison purposes: runs of
 * blanks separate words, quotes and backslash escapes keep blanks inside a
 * word, `#` outside quotes starts a comment. Words keep their quotes, so two
 * spellings compare equal only when written alike (a reload is the safe side).
 */
export function words(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      cur += c;
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === quote) quote = "";
      continue;
    }
    if (c === "#") break;
    if (c === " " || c === "\t" || c === "\r") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
      continue;
    }
    inWord = true;
    cur += c;
    if (c === "\\" && i + 1 < line.length) cur += line[++i];
    else if (c === '"' || c === "'") quote = c;
  }
  if (inWord) out.push(cur);
  return out;
}

// Server keywords of haproxy 2.6 by number of arguments, so the words of a
// server line can be walked; a word that is none of these makes the line
// "not addable" (and any change of it a reload).
const FLAG_KEYWORDS = new Set([
  "check", "no-check", "check-ssl", "no-check-ssl", "check-send-proxy", "no-check-send-proxy", "check-via-socks4",
  "agent-check", "no-agent-check", "backup", "no-backup", "disabled", "enabled", "ssl", "no-ssl", "send-proxy",
  "no-send-proxy", "send-proxy-v2", "no-send-proxy-v2", "send-proxy-v2-ssl", "no-send-proxy-v2-ssl",
  "send-proxy-v2-ssl-cn", "no-send-proxy-v2-ssl-cn", "no-ssl-reuse", "ssl-reuse", "no-sslv3", "no-tlsv10", "no-tlsv11",
  "no-tlsv12", "no-tlsv13", "force-sslv3", "force-tlsv10", "force-tlsv11", "force-tlsv12", "force-tlsv13",
  "no-tls-tickets", "tls-tickets", "allow-0rtt", "tfo", "non-stick", "stick", "no-verifyhost", "sni-auto",
]);
const ONE_ARG_KEYWORDS = new Set([
  "addr", "agent-addr", "agent-inter", "agent-port", "agent-send", "alpn", "ca-file", "check-alpn", "check-proto",
  "check-sni", "ciphers", "ciphersuites", "crl-file", "crt", "downinter", "error-limit", "fall", "fastinter", "id",
  "inter", "maxconn", "maxqueue", "minconn", "npn", "observe", "on-error", "on-marked-down", "on-marked-up",
  "pool-low-conn", "pool-max-conn", "pool-purge-delay", "port", "proto", "proxy-v2-options", "rise", "slowstart",
  "sni", "ssl-max-ver", "ssl-min-ver", "track", "verify", "verifyhost", "weight", "ws", "cookie", "redir",
  "init-addr", "resolvers", "resolve-prefer", "resolve-net", "resolve-opts", "namespace", "max-reuse", "socks4",
  "tcp-ut", "log-proto", "curves", "sigalgs", "client-sigalgs", "set-proxy-v2-tlv-fmt", "source", "usesrc",
  "interface", "check-reuse-pool", "agent-send",
]);
/**
 * Keywords `add server` accepts in haproxy 2.6 (management guide, "add
 * server"), minus `source`/`usesrc` (variable arguments) and `track` (may
 * not follow another dynamic server): a server line with any other keyword
 * is added by a reload.
 */
const ADDABLE = new Set([
  "agent-addr", "agent-check", "agent-inter", "agent-port", "agent-send", "allow-0rtt", "alpn", "addr", "backup",
  "ca-file", "check", "check-alpn", "check-proto", "check-send-proxy", "check-sni", "check-ssl", "check-via-socks4",
  "ciphers", "ciphersuites", "crl-file", "crt", "disabled", "downinter", "enabled", "error-limit", "fall", "fastinter",
  "force-sslv3", "force-tlsv10", "force-tlsv11", "force-tlsv12", "force-tlsv13", "id", "inter", "maxconn", "maxqueue",
  "minconn", "no-ssl-reuse", "no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13", "no-tls-tickets", "npn",
  "observe", "on-error", "on-marked-down", "on-marked-up", "pool-low-conn", "pool-max-conn", "pool-purge-delay", "port",
  "proto", "proxy-v2-options", "rise", "send-proxy", "send-proxy-v2", "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn",
  "slowstart", "sni", "ssl", "ssl-max-ver", "ssl-min-ver", "tfo", "tls-tickets", "verify", "verifyhost", "weight", "ws",
]);

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:.]+$/;

/** "192.0.2.1:80" / "2001:db8::1:80" → ip + port; anything else (names, ranges, prefixes) → undefined. */
function ipAndPort(target: string): { ip: string; port: number } | undefined {
  const at = target.lastIndexOf(":");
  if (at <= 0) return undefined;
  const host = target.slice(0, at);
  const portText = target.slice(at + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  if (IPV4.test(host)) return { ip: host, port };
  if (host.includes(":") && IPV6.test(host) && (host.match(/::/g) ?? []).length <= 1) return { ip: host, port };
  return undefined;
}

function parseServer(w: string[]): ServerLine {
  const s: ServerLine = {
    name: w[1] ?? "", target: w[2] ?? "", weight: 1, disabled: false, options: [], check: false, agentCheck: false,
  };
  const ipp = ipAndPort(s.target);
  if (ipp) Object.assign(s, ipp);
  for (let i = 3; i < w.length; i++) {
    const k = w[i]!;
    if (k === "weight" && i + 1 < w.length && /^\d+$/.test(w[i + 1]!)) {
      s.weight = Number(w[++i]);
      continue;
    }
    if (k === "disabled") {
      s.disabled = true;
      continue;
    }
    if (k === "enabled") {
      s.disabled = false;
      continue;
    }
    if (FLAG_KEYWORDS.has(k)) {
      s.options.push(k);
      if (k === "check") s.check = true;
      if (k === "agent-check") s.agentCheck = true;
    } else if (ONE_ARG_KEYWORDS.has(k) && i + 1 < w.length) {
      s.options.push(`${k} ${w[++i]}`);
    } else {
      // Unknown here: keep the rest as one option (compared as text) and never add it at runtime.
      s.options.push(w.slice(i).join(" "));
      s.notAddable ??= `keyword "${k}"`;
      break;
    }
    if (!ADDABLE.has(k)) s.notAddable ??= `keyword "${k}"`;
  }
  if (!ipp) s.notAddable ??= `address "${s.target}" (not an IP address with a port)`;
  return s;
}

/** Parses a config into sections (one pass over the text). */
export function parseConfigModel(text: string): ConfigModel {
  const sections: Section[] = [];
  // Lines before any section header (haproxy refuses real ones; comments only).
  let cur: Section = { header: "", type: "", name: "", lines: [], servers: new Map() };
  sections.push(cur);
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const w = words(text.slice(start, end));
    start = end + 1;
    if (w.length === 0) continue;
    if (SECTION_WORDS.has(w[0]!)) {
      cur = { header: w.join(" "), type: w[0]!, name: w[1] ?? "", lines: [], servers: new Map() };
      sections.push(cur);
      continue;
    }
    if (cur.type === "backend" && w[0] === "server" && w.length >= 3 && !cur.servers.has(w[1]!)) {
      cur.servers.set(w[1]!, parseServer(w));
      continue;
    }
    // A repeated server name stays a plain line: haproxy refuses it anyway.
    cur.lines.push(w.join(" "));
  }
  if (sections[0]!.lines.length === 0) sections.shift();
  return { sections };
}

export type ServerChange =
  | { kind: "add"; backend: string; server: ServerLine }
  | { kind: "del"; backend: string; server: ServerLine }
  | { kind: "set"; backend: string; from: ServerLine; to: ServerLine };

export type ConfigDiff =
  | { kind: "same" }
  | { kind: "runtime"; changes: ServerChange[] }
  | { kind: "reload"; reason: string };

/** The value of the first line starting with `keyword ` (e.g. "balance roundrobin" → "roundrobin"). */
function setting(lines: string[], keyword: string): string | undefined {
  let found: string | undefined;
  for (const l of lines) if (l === keyword || l.startsWith(`${keyword} `)) found = l.slice(keyword.length + 1);
  return found;
}

/**
 * Whether a backend's load-balancing algorithm is dynamic (weights may
 * change, servers may be added): roundrobin (the default), leastconn,
 * first, random, and hash-based ones with `hash-type consistent`. static-rr
 * and map-based hashing (the default hash-type) are static.
 */
function dynamicAlgorithm(be: Section, defaults: Section | undefined): { ok: boolean; algo: string } {
  const balance = (setting(be.lines, "balance") ?? (defaults && setting(defaults.lines, "balance")) ?? "roundrobin").split(" ")[0]!;
  if (["roundrobin", "leastconn", "first"].includes(balance) || balance.startsWith("random")) return { ok: true, algo: balance };
  if (balance === "static-rr") return { ok: false, algo: balance };
  const hashType = setting(be.lines, "hash-type") ?? (defaults && setting(defaults.lines, "hash-type")) ?? "map-based";
  return { ok: hashType.startsWith("consistent"), algo: `${balance} (hash-type ${hashType.split(" ")[0]})` };
}

/**
 * Compares the running config with a new one. "same": nothing to do;
 * "runtime": only server changes the runtime API can make; "reload": the
 * first difference that needs one.
 */
export function diffConfigs(running: ConfigModel, next: ConfigModel): ConfigDiff {
  const a = running.sections;
  const b = next.sections;
  if (a.length !== b.length || a.some((s, i) => s.header !== b[i]!.header)) {
    const i = a.findIndex((s, k) => s.header !== b[k]?.header);
    const at = i < 0 ? a.length : i;
    const reason = at < b.length && at < a.length
      ? `section "${a[at]!.header || "(top)"}" became "${b[at]!.header || "(top)"}"`
      : at < b.length ? `section "${b[at]!.header}" added` : `section "${a[at]!.header}" removed`;
    return { kind: "reload", reason };
  }
  const changes: ServerChange[] = [];
  let defaults: Section | undefined;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const where = x.header || "top of the file";
    if (x.type === "defaults") defaults = y;
    const n = Math.max(x.lines.length, y.lines.length);
    for (let k = 0; k < n; k++) {
      if (x.lines[k] !== y.lines[k]) {
        const what = y.lines[k] === undefined ? `"${x.lines[k]}" removed` : x.lines[k] === undefined ? `"${y.lines[k]}" added` : `"${x.lines[k]}" became "${y.lines[k]}"`;
        return { kind: "reload", reason: `${where}: ${what}` };
      }
    }
    if (x.type !== "backend") continue;
    const r = diffServers(x, y, defaults, changes);
    if (r) return { kind: "reload", reason: `${where}: ${r}` };
  }
  return changes.length ? { kind: "runtime", changes } : { kind: "same" };
}

/** Appends the server changes of one backend; returns why a reload is needed instead, if it is. */
function diffServers(x: Section, y: Section, defaults: Section | undefined, out: ServerChange[]): string | undefined {
  const backend = y.name;
  const algo = dynamicAlgorithm(y, defaults);
  const mine: ServerChange[] = [];
  for (const [name, from] of x.servers) {
    const to = y.servers.get(name);
    if (!to) {
      if (!algo.ok) return `server ${name} removed, and the algorithm ${algo.algo} is static`;
      mine.push({ kind: "del", backend, server: from });
      continue;
    }
    if (from.options.join(" ") !== to.options.join(" ")) {
      return `server ${name}: "${from.options.join(" ")}" became "${to.options.join(" ")}"`;
    }
    const moved = from.target !== to.target;
    if (moved && (from.ip === undefined || to.ip === undefined)) return `server ${name}: address ${from.target} became ${to.target} (only IP addresses with a port change at runtime)`;
    if (moved && from.ip!.includes(":") !== to.ip!.includes(":")) return `server ${name}: address ${from.target} became ${to.target} (another address family)`;
    if (from.weight !== to.weight && !algo.ok) return `server ${name}: weight ${from.weight} became ${to.weight}, and the algorithm ${algo.algo} is static`;
    if (moved || from.weight !== to.weight || from.disabled !== to.disabled) mine.push({ kind: "set", backend, from, to });
  }
  for (const [name, to] of y.servers) {
    if (x.servers.has(name)) continue;
    if (!algo.ok) return `server ${name} added, and the algorithm ${algo.algo} is static`;
    if (to.notAddable) return `server ${name} added with ${to.notAddable}, which "add server" does not take`;
    // `add server` ignores default-server lines: the server would differ from the config.
    if (y.lines.some((l) => l.startsWith("default-server ")) || defaults?.lines.some((l) => l.startsWith("default-server "))) {
      return `server ${name} added, and default-server settings do not apply to servers added at runtime`;
    }
    if (to.weight > 256) return `server ${name} added with weight ${to.weight}`;
    mine.push({ kind: "add", backend, server: to });
  }
  out.push(...mine);
  return undefined;
}

/** One line per change, for logs and answers ("add B/S", "weight B/S 1→3", ...). */
export function describeChanges(changes: ServerChange[]): string {
  const counts = { add: 0, del: 0, set: 0 };
  for (const c of changes) counts[c.kind]++;
  const parts: string[] = [];
  if (counts.set) parts.push(`${counts.set} server${counts.set === 1 ? "" : "s"} changed`);
  if (counts.add) parts.push(`${counts.add} added`);
  if (counts.del) parts.push(`${counts.del} removed`);
  return parts.join(", ");
}

const SERVER_NAME = /^[A-Za-z0-9_.:-]+$/;

/**
 * Whether `next` is valid for haproxy because `validated` (a config haproxy
 * accepted, with the same peer name) is and the two differ only in ways
 * whose validity is checked here: weights (0-256), `disabled`, IP addresses
 * and ports of existing servers; removed servers no other line names;
 * added servers whose keywords are exactly those of a server of the same
 * backend in `validated` (no `id`). Returns why `haproxy -c` is still
 * needed, or undefined. Lets a member change skip the ~50 ms (much more on
 * a loaded machine) of a `haproxy -c` run, which would otherwise dominate
 * a reload-free apply.
 */
export function whyValidationNeeded(validated: ConfigModel, next: ConfigModel): string | undefined {
  const d = diffConfigs(validated, next);
  if (d.kind === "reload") return d.reason;
  if (d.kind === "same") return undefined;
  const backends = new Map(validated.sections.filter((s) => s.type === "backend").map((s) => [s.name, s]));
  const removed = new Set(d.changes.filter((c) => c.kind === "del").map((c) => c.kind === "del" ? c.server.name : ""));
  for (const c of d.changes) {
    const s = c.kind === "set" ? c.to : c.server;
    if (s.weight > 256) return `server ${s.name}: weight ${s.weight}`;
    if (c.kind !== "add") continue;
    if (!SERVER_NAME.test(s.name) || s.ip === undefined) return `server ${s.name} added`;
    const opts = s.options.join(" ");
    if (s.options.some((o) => o.startsWith("id "))) return `server ${s.name} added with an id`;
    const be = backends.get(c.backend);
    if (!be || ![...be.servers.values()].some((o) => o.options.join(" ") === opts)) return `server ${s.name} added with keywords no server of its backend had`;
  }
  if (removed.size) {
    // A removed server some other line names (use-server, track, ...) makes the config invalid.
    for (const sec of next.sections) {
      const lines = [...sec.lines, ...[...sec.servers.values()].map((v) => v.options.join(" "))];
      for (const l of lines) for (const w of l.split(/[ /,()]/)) if (removed.has(w)) return `removed server ${w} is named in "${l}"`;
    }
  }
  return undefined;
}
