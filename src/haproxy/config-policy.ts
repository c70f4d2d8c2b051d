// The config policy for haproxy: what a controller's upload may contain
// beyond what haproxy itself accepts. A stolen controller certificate must
// not turn into root code execution or files written anywhere, so by default
// the agent refuses, before `haproxy -c` ever reads the upload, constructs
// Octavia's templates never render:
// - `program` sections and `lua-load`/`lua-load-per-thread`/`lua-prepend-path`
//   (run as root, even by `haproxy -c`: a PEM/Lua polyglot uploaded as a
//   "certificate" and lua-loaded ran during validation), `ssl-engine`,
//   `ssl-provider`/`ssl-provider-path` (load shared libraries),
//   `filter spoe`, `pidfile`, `chroot`, `insecure-setuid-wanted`, `uid`/`gid`,
//   `user`/`group` other than the unprivileged ones;
// - `external-check command` outside the allowed folders (Octavia:
//   /var/lib/octavia/ping-wrapper.sh);
// - sockets haproxy creates (`stats socket`, `bind <path>`, `unix-bind`)
//   anywhere but `<name>.sock` directly in the state directory or the load
//   balancer's own folder (a stats socket replaces whatever file is there:
//   /etc/passwd, the agent's key...), and never over an existing file that
//   is no socket;
// - files haproxy reads (crt, ca-file, crl-file, errorfile, server-state-file,
//   ACL `-f` files, map files...) outside the state directory, the
//   certificate folder and Octavia's default folder;
// - `log` targets that are paths other than Octavia's log sockets
//   (/run/rsyslog/octavia/log, /dev/log) or the state directory; `server`
//   addresses that are local sockets.
// Everything Octavia's combined_listeners template renders passes
// (test/haproxy/config-policy.test.ts renders it with python3-octavia).
// The agent config option `config_policy = off` turns it off; extra folders
// can be allowed with `config_policy_paths` (see src/config/config.ts).
// One pass over the lines; no regular expression sees the whole text.
import { lstatSync } from "node:fs";
import { dirname, isAbsolute, normalize } from "node:path";
import { invalid } from "../errors.js";
import { Pacer } from "../system/pacer.js";

export interface ConfigPolicy {
  /** false: no policy (the operator relaxed it). */
  enabled: boolean;
  stateDir: string;
  certDir: string;
  /** Extra folders an operator allows for files, sockets and external checks. */
  extraPaths: string[];
  /** Files and folders inside the allowed ones that a config may never name (the agent's own key, CA, configuration). */
  deniedPaths?: string[];
}

/** Octavia's defaults, accepted whatever the agent's own folders are. */
export const OCTAVIA_BASE = "/var/lib/octavia";
export const OCTAVIA_LOG_SOCKETS = ["/run/rsyslog/octavia/log", "/dev/log"];

const REFUSED_KEYWORDS = new Map<string, string>([
  ["lua-load", "runs Lua code as root"],
  ["lua-load-per-thread", "runs Lua code as root"],
  ["lua-prepend-path", "makes haproxy load Lua code from another folder"],
  ["ssl-engine", "loads an OpenSSL engine (a shared library) as root"],
  ["ssl-provider", "loads an OpenSSL provider (a shared library) as root"],
  ["ssl-provider-path", "makes haproxy load shared libraries from another folder"],
  ["pidfile", "makes haproxy write a file the agent does not own"],
  ["chroot", "is not used by Octavia's configurations"],
  ["insecure-setuid-wanted", "lets haproxy run setuid programs"],
  ["uid", "would change the user haproxy's workers run as"],
  ["gid", "would change the group haproxy's workers run as"],
  ["unix-bind", "changes where haproxy creates sockets"],
  ["server-state-base", "changes where haproxy reads server state files"],
  ["external-check path", "changes the PATH of health check programs"],
]);

/** Users and groups the workers may drop to. */
const UNPRIVILEGED = new Set(["nobody", "nogroup", "haproxy"]);

/** Keywords whose next word is a file haproxy reads. */
const FILE_ARGS = new Set([
  "crt", "crt-list", "ca-file", "crl-file", "ca-verify-file", "issuers-chain-path", "crt-base", "ca-base",
  "ssl-dh-param-file", "h1-case-adjust-file", "server-state-file", "51degrees-data-file", "wurfl-data-file",
  "deviceatlas-json-file", "-f", "file", "lf-file", "key",
]);

/** Longest line the policy reads (Octavia renders lines of a few hundred characters). */
const MAX_LINE = 64 * 1024;

/** haproxy refuses a line of more than 64 words (MAX_LINE_ARGS); one more is enough to tell. */
export const MAX_WORDS = 65;

/**
 * Words of a haproxy line: blanks separate them; quotes and backslash
 * escapes as haproxy reads them; "#" starts a comment. At most MAX_WORDS.
 */
export function haproxyWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n && words.length < MAX_WORDS) {
    const c = line.charCodeAt(i);
    if (c === 32 || c === 9 || c === 13) {
      i++;
      continue;
    }
    if (c === 35 /* # */) break;
    // A plain word is sliced whole; one with quotes or escapes is rebuilt from its parts.
    let j = i;
    let parts: string[] | undefined;
    let from = i;
    let quote = 0;
    while (j < n) {
      const d = line.charCodeAt(j);
      if (quote) {
        if (d === quote) {
          (parts ??= []).push(line.slice(from, j));
          from = j + 1;
          quote = 0;
        } else if (d === 92 /* \ */ && quote === 34 && j + 1 < n) {
          (parts ??= []).push(line.slice(from, j));
          from = j + 1;
          j++;
        }
        j++;
        continue;
      }
      if (d === 32 || d === 9 || d === 13 || d === 35) break;
      if (d === 34 || d === 39) {
        (parts ??= []).push(line.slice(from, j));
        from = j + 1;
        quote = d;
      } else if (d === 92 && j + 1 < n) {
        (parts ??= []).push(line.slice(from, j));
        from = j + 1;
        j++;
      }
      j++;
    }
    words.push(parts ? parts.join("") + line.slice(from, Math.min(j, n)) : line.slice(i, j));
    i = j;
  }
  return words;
}

const SECTIONS = new Set(["global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist", "mailers", "program", "http-errors", "ring", "cache", "fcgi-app", "crt-store", "traces"]);

function under(path: string, dir: string): boolean {
  const d = dir.endsWith("/") ? dir : dir + "/";
  return path.startsWith(d);
}

interface Context {
  p: ConfigPolicy;
  readRoots: string[];
  socketDirs: string[];
  checkDirs: string[];
  lbDir: string;
}

/** Why a file haproxy reads is refused, or "". */
function fileVerdict(path: string, what: string, c: Context): string {
  if (!isAbsolute(path)) return `${what} ${path} is not an absolute path`;
  const abs = normalize(path);
  if (!c.readRoots.some((r) => under(abs, r))) return `${what} ${path} is outside the folders the agent allows (${c.readRoots.join(", ")})`;
  if ((c.p.deniedPaths ?? []).some((d) => abs === d || under(abs, d))) return `${what} ${path} is one of the agent's own files`;
  return "";
}

/** Why a socket haproxy creates is refused, or "". */
function socketVerdict(spec: string, what: string, c: Context): string {
  if (spec.includes("@") && !spec.startsWith("unix@")) return `${what} ${spec}: only a socket path is allowed`;
  const path = spec.startsWith("unix@") ? spec.slice(5) : spec;
  if (!isAbsolute(path)) return `${what} ${path} is not an absolute path`;
  const abs = normalize(path);
  const dir = dirname(abs);
  const name = abs.slice(dir.length + 1);
  if (!c.socketDirs.includes(dir) || !name.endsWith(".sock") || name === "master.sock") {
    return `${what} ${path} must be a <name>.sock directly in ${c.p.stateDir} or the load balancer's folder ${c.lbDir}`;
  }
  try {
    if (!lstatSync(abs).isSocket()) return `${what} ${path} would replace an existing file that is not a socket`;
  } catch {
    // Absent: haproxy creates it.
  }
  return "";
}

const LOCAL_SOCKET = ["unix@", "abns@", "fd@", "sockpair@"];

/** Why the policy refuses a (non-section) line of `section`, or "". */
function lineVerdict(w: string[], section: string, c: Context): string {
  const kw = w[0]!;
  const two = `${kw} ${w[1] ?? ""}`;
  const why = REFUSED_KEYWORDS.get(two) ?? REFUSED_KEYWORDS.get(kw);
  if (why) return `${REFUSED_KEYWORDS.has(two) ? two : kw} ${why}`;
  if ((kw === "user" || kw === "group") && section === "global" && !UNPRIVILEGED.has(w[1] ?? "")) {
    return `${kw} ${w[1] ?? ""}: haproxy's workers may only run as ${[...UNPRIVILEGED].join("/")}`;
  }
  if (kw === "external-check" && w[1] === "command") {
    const cmd = w[2] ?? "";
    if (!isAbsolute(cmd) || !c.checkDirs.includes(dirname(normalize(cmd)))) return `external-check command ${cmd} must be a program directly in ${c.checkDirs.join(" or ")}`;
    return "";
  }
  if (kw === "stats" && w[1] === "socket") return socketVerdict(w[2] ?? "", "stats socket", c);
  if (kw === "bind") {
    for (const a of (w[1] ?? "").split(",")) {
      if (a.startsWith("/") || LOCAL_SOCKET.some((x) => a.startsWith(x))) {
        const v = socketVerdict(a, "bind", c);
        if (v) return v;
      }
    }
  }
  if (kw === "server") {
    const addr = w[2] ?? "";
    if (addr.startsWith("/") || LOCAL_SOCKET.some((x) => addr.startsWith(x))) return `server address ${addr}: members are reached by IP address, not through local sockets`;
  }
  if (kw === "log" && w[1] && w[1] !== "global") {
    const t = normalize(w[1].startsWith("unix@") ? w[1].slice(5) : w[1]);
    if (t.startsWith("/") && !OCTAVIA_LOG_SOCKETS.includes(t) && !under(t, c.p.stateDir) && !c.p.extraPaths.some((x) => under(t, x))) {
      return `log target ${t} must be one of ${OCTAVIA_LOG_SOCKETS.join(", ")}, an address, or a socket in ${c.p.stateDir}`;
    }
  }
  if (kw === "filter" && w[1] === "spoe") return "filter spoe reads its own configuration file and talks to external agents";
  if (kw === "errorfile" && w[2]) {
    const v = fileVerdict(w[2], "errorfile", c);
    if (v) return v;
  }
  // Files named as the argument of a keyword anywhere on the line, and
  // map/ACL files named inside sample converters: "map(/file)".
  for (let i = 0; i < w.length; i++) {
    const word = w[i]!;
    if (FILE_ARGS.has(word) && i + 1 < w.length) {
      const next = w[i + 1]!;
      // "key" and "file" are files only when a path follows ("stick on key(...)", "return ... string").
      if (!((word === "key" || word === "file") && !next.startsWith("/") && !next.startsWith("."))) {
        const v = fileVerdict(next, word, c);
        if (v) return v;
      }
    }
    let at = word.indexOf("(/");
    while (at >= 0) {
      let close = at + 1;
      while (close < word.length && word[close] !== "," && word[close] !== ")") close++;
      const v = fileVerdict(word.slice(at + 1, close), "file", c);
      if (v) return v;
      at = word.indexOf("(/", close);
    }
  }
  return "";
}

/**
 * Throws `invalid` (400, reason CONFIG_POLICY) naming the first line of
 * `text` the policy refuses. `lbId` is the load balancer the config is for.
 * One pass over the lines, linear in the text; an 8 MiB upload is ~100 ms
 * of it, so the scan yields the event loop every slice (Pacer).
 */
export async function checkHaproxyPolicy(text: string, lbId: string, p: ConfigPolicy): Promise<void> {
  if (!p.enabled) return;
  const pace = new Pacer();
  const lbDir = `${p.stateDir}/lb/${lbId}`;
  const c: Context = {
    p,
    lbDir,
    readRoots: [p.stateDir, p.certDir, OCTAVIA_BASE, ...p.extraPaths],
    socketDirs: [p.stateDir, OCTAVIA_BASE, lbDir, ...p.extraPaths],
    checkDirs: [p.stateDir, OCTAVIA_BASE, ...p.extraPaths],
  };
  let section = "";
  let start = 0;
  let n = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    n++;
    const raw = text.slice(start, end);
    start = end + 1;
    if ((n & 63) === 0 || raw.length > 1024) await pace.step();
    if (raw.length > MAX_LINE) {
      throw invalid("Invalid request", `line ${n}: ${JSON.stringify(raw.slice(0, 80))}...: ${raw.length} characters on one line; no configuration Octavia renders comes near ${MAX_LINE}`, "CONFIG_POLICY");
    }
    const w = haproxyWords(raw);
    if (!w.length) continue;
    let why = "";
    // haproxy opens a section on its keyword wherever the line is indented.
    if (SECTIONS.has(w[0]!)) {
      section = w[0]!;
      if (section === "program") why = "program sections run any command as root";
    } else if (w.length >= MAX_WORDS) {
      why = `more than ${MAX_WORDS - 1} words on one line (haproxy refuses it too)`;
    } else {
      why = lineVerdict(w, section, c);
    }
    if (why) {
      throw invalid(
        "Invalid request",
        `line ${n}: ${JSON.stringify(raw.trim().slice(0, 200))}: ${why} (refused by the agent's config policy; an operator can relax it with config_policy in the agent configuration)`,
        "CONFIG_POLICY",
      );
    }
  }
}
