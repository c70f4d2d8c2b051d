// The agent's configuration: Octavia's amphora-agent.conf (INI) plus
// command-line flags. Parsing is strict for the options we use and
// tolerant (logged once) for Octavia options we do not need.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { DomainError } from "../errors.js";
import { DEFAULT_LIMITS, type ConnectionLimits } from "./transport-options.js";
import type { ClientCertRules } from "./transport-options.js";

export interface HeartbeatTarget {
  host: string;
  port: number;
}

export interface AgentConfig {
  /** Folder for all agent state: load balancers, certificates, PKI. */
  stateDir: string;
  /** Certificates of load balancers (Octavia's base_cert_dir). */
  certDir: string;
  bindHost: string;
  bindPort: number;
  haproxyCmd: string;
  /** CA that client certificates must chain to. */
  serverCaFile: string;
  /** One PEM with the agent's key and certificate. */
  serverCertFile: string;
  amphoraId: string;
  requestReadTimeoutS: number;
  heartbeatTargets: HeartbeatTarget[];
  heartbeatIntervalS: number;
  heartbeatKey: string;
  topology: "SINGLE" | "ACTIVE_STANDBY";
  /** Network namespace haproxy and keepalived run in ("" = the agent's own; default amphora-haproxy, "" in dev mode). */
  netns: string;
  /** Events WatchEvents keeps for resumes ([amphora_agent] event_ring_size; takes effect at start). */
  eventRingSize: number;
  /**
   * The config policy (src/haproxy/config-policy.ts, src/keepalived/config-policy.ts):
   * true (default, `config_policy = octavia`) refuses uploads with constructs
   * Octavia's templates never render; `config_policy = off` relaxes it.
   */
  configPolicy: boolean;
  /** Extra absolute folders the policy allows for files, sockets and scripts (`config_policy_paths`, comma-separated). */
  configPolicyPaths: string[];
  /** Time and count bounds on connections and requests (connection-limits.ts). */
  limits: ConnectionLimits;
  /** Controller certificates allowed beyond the CA check; empty lists allow any but the agent's own (client-identity.ts). */
  clientCerts: ClientCertRules;
}

/**
 * Options of this agent that Octavia's controller never renders into the
 * amphora-agent.conf it uploads (PUT /1.0/config): an operator sets them
 * in the file by hand, and an update that lacks them keeps them.
 */
export const LOCAL_OPTIONS: readonly (readonly [section: string, key: string])[] = [
  ["amphora_agent", "amphora_network_namespace"],
  ["amphora_agent", "event_ring_size"],
  ["amphora_agent", "config_policy"],
  ["amphora_agent", "config_policy_paths"],
  ...transportKeys().map((k) => ["amphora_agent", k] as const),
];

/**
 * Options only an operator may set (in the file, on the amphora): an
 * UpdateAgentConfig that would change them is refused, so a controller's
 * certificate cannot switch off the policy that limits it.
 */
export const OPERATOR_ONLY: readonly (keyof AgentConfig)[] = ["configPolicy", "configPolicyPaths", "limits", "clientCerts"];

/** Connection bounds and controller certificates: operator settings the controller never renders. */
function transportKeys() {
  return ["tls_handshake_timeout", "first_request_timeout", "request_body_timeout", "max_pending_handshakes",
    "max_concurrent_streams", "max_requests", "max_calls_in_progress", "controller_cert_subjects", "controller_cert_sha256"] as const;
}

/** Options whose change takes effect without a restart (UpdateAgentConfig). */
export const MUTABLE_OPTIONS = ["heartbeatTargets", "heartbeatIntervalS", "heartbeatKey", "topology"] as const;

export class ConfigError extends DomainError {
  constructor(file: string, line: number, option: string, what: string) {
    super("invalid", `${file}${line ? `:${line}` : ""}: ${option ? `option ${option}: ` : ""}${what}`, "", "CONFIG_FILE_INVALID");
  }
}

interface IniValue {
  value: string;
  line: number;
}
export type Ini = Map<string, Map<string, IniValue>>;

/** Parses INI text; `#`/`;` comments, `key = value` or `key: value`. */
export function parseIni(text: string, file: string): Ini {
  const out: Ini = new Map();
  let section = "DEFAULT";
  out.set(section, new Map());
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) return;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!.trim();
      if (!out.has(section)) out.set(section, new Map());
      return;
    }
    const kv = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
    // Only the first word: the rest of a malformed line may be a secret
    // (e.g. "heartbeat_key insecure" without "=").
    if (!kv) throw new ConfigError(file, i + 1, "", `cannot parse line starting with ${JSON.stringify(line.split(/[\s=:]/)[0]!.slice(0, 40))}: expected "key = value" or "[section]"`);
    out.get(section)!.set(kv[1]!, { value: kv[2]!.trim(), line: i + 1 });
  });
  return out;
}

type Setter = (cfg: AgentConfig, v: string, fail: (what: string) => never) => void;

const int = (min: number, max: number) => (v: string, fail: (w: string) => never) => {
  if (!/^-?\d+$/.test(v)) fail(`expected an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min || n > max) fail(`must be between ${min} and ${max}, got ${n}`);
  return n;
};

function parseTargets(v: string, fail: (w: string) => never): HeartbeatTarget[] {
  if (!v) return [];
  return v.split(",").map((s) => s.trim()).filter(Boolean).map((entry) => {
    // "host:port", "[v6]:port" or bare v6 with the port after the last colon.
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(entry) ?? /^(.+):(\d+)$/.exec(entry);
    if (!m || !isIP(m[1]!)) fail(`expected IP:PORT entries, got ${JSON.stringify(entry)}`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) fail(`port out of range in ${JSON.stringify(entry)}`);
    return { host: m[1]!, port };
  });
}

const seconds = (key: keyof ConnectionLimits, min: number, max: number): Setter => (c, v, f) => {
  c.limits = { ...c.limits, [key]: int(min, max)(v, f) * 1000 };
};
const count = (key: keyof ConnectionLimits, min: number, max: number): Setter => (c, v, f) => {
  c.limits = { ...c.limits, [key]: int(min, max)(v, f) };
};
/** Entries separated by ";" (a subject has commas). */
const list = (v: string) => v.split(";").map((x) => x.trim()).filter(Boolean);

/** This agent's own [amphora_agent] options for connection bounds and controller certificates (README "Security"). */
const TRANSPORT_OPTIONS: Record<ReturnType<typeof transportKeys>[number], Setter> = {
  tls_handshake_timeout: seconds("handshakeTimeoutMs", 1, 600),
  first_request_timeout: seconds("firstRequestTimeoutMs", 1, 3600),
  request_body_timeout: seconds("bodyTimeoutMs", 1, 86400),
  max_pending_handshakes: count("maxPendingHandshakes", 1, 100000),
  max_concurrent_streams: count("maxStreamsPerSession", 1, 10000),
  max_requests: count("maxRequests", 1, 1000000),
  max_calls_in_progress: count("maxCalls", 1, 100000),
  controller_cert_subjects: (c, v) => { c.clientCerts = { ...c.clientCerts, subjects: list(v) }; },
  controller_cert_sha256: (c, v, f) => {
    const fps = list(v);
    const bad = fps.find((x) => !/^(sha256:)?([0-9a-fA-F]{2}:?){32}$/.test(x.replace(/\s/g, "")));
    if (bad) f(`expected SHA-256 fingerprints (64 hex digits, colons allowed), got ${JSON.stringify(bad.slice(0, 80))}`);
    c.clientCerts = { ...c.clientCerts, sha256: fps };
  },
};

const KNOWN: Record<string, Record<string, Setter>> = {
  haproxy_amphora: {
    base_path: (c, v) => { c.stateDir = v; },
    base_cert_dir: (c, v) => { c.certDir = v; },
    bind_host: (c, v, f) => { if (!isIP(v) && v !== "localhost") f(`expected an IP address, got ${JSON.stringify(v)}`); c.bindHost = v; },
    bind_port: (c, v, f) => { c.bindPort = int(1, 65535)(v, f); },
    haproxy_cmd: (c, v, f) => { if (!v.startsWith("/")) f("must be an absolute path"); c.haproxyCmd = v; },
  },
  amphora_agent: {
    agent_server_ca: (c, v) => { c.serverCaFile = v; },
    agent_server_cert: (c, v) => { c.serverCertFile = v; },
    amphora_id: (c, v, f) => { if (!/^[0-9a-fA-F-]{8,64}$/.test(v)) f(`expected a UUID, got ${JSON.stringify(v)}`); c.amphoraId = v; },
    agent_request_read_timeout: (c, v, f) => { c.requestReadTimeoutS = int(1, 86400)(v, f); },
    amphora_network_namespace: (c, v) => { c.netns = v; },
    event_ring_size: (c, v, f) => { c.eventRingSize = int(16, 1_000_000)(v, f); },
    config_policy: (c, v, f) => {
      if (v !== "octavia" && v !== "off") f(`expected octavia or off, got ${JSON.stringify(v)}`);
      c.configPolicy = v === "octavia";
    },
    config_policy_paths: (c, v, f) => {
      const dirs = v.split(",").map((d) => d.trim()).filter(Boolean);
      for (const d of dirs) if (!d.startsWith("/") || d.split("/").includes("..") || d === "/") f(`expected absolute folders other than /, got ${JSON.stringify(d)}`);
      c.configPolicyPaths = dirs.map((d) => {
        let end = d.length;
        while (end > 1 && d[end - 1] === "/") end--;
        return d.slice(0, end);
      });
    },
    ...TRANSPORT_OPTIONS,
  },
  health_manager: {
    controller_ip_port_list: (c, v, f) => { c.heartbeatTargets = parseTargets(v, f); },
    heartbeat_interval: (c, v, f) => { c.heartbeatIntervalS = int(1, 3600)(v, f); },
    heartbeat_key: (c, v) => { c.heartbeatKey = v; },
  },
  controller_worker: {
    loadbalancer_topology: (c, v, f) => {
      if (v !== "SINGLE" && v !== "ACTIVE_STANDBY") f(`expected SINGLE or ACTIVE_STANDBY, got ${JSON.stringify(v)}`);
      c.topology = v as AgentConfig["topology"];
    },
  },
};

/**
 * The load-balancer namespace Octavia hardcodes (its agent never reads an
 * option for it, and its controller never renders one): the default outside
 * dev mode. Dev mode defaults to the agent's own namespace ("") so a
 * workstation run changes no namespace; tests set an amt- one.
 */
export const OCTAVIA_NAMESPACE = "amphora-haproxy";

export function defaultConfig(stateDir = "/var/lib/amphora-agent", o: { dev?: boolean } = {}): AgentConfig {
  return {
    stateDir,
    certDir: "",
    bindHost: "0.0.0.0",
    bindPort: 9443,
    haproxyCmd: "/usr/sbin/haproxy",
    serverCaFile: "",
    serverCertFile: "",
    amphoraId: "",
    requestReadTimeoutS: 180,
    heartbeatTargets: [],
    heartbeatIntervalS: 10,
    heartbeatKey: "",
    topology: "SINGLE",
    netns: o.dev ? "" : OCTAVIA_NAMESPACE,
    eventRingSize: 10_000,
    configPolicy: true,
    configPolicyPaths: [],
    limits: { ...DEFAULT_LIMITS },
    clientCerts: { subjects: [], sha256: [] },
  };
}

/**
 * Applies INI text on top of `base`. Returns the new config and the names of
 * options that were present but are not used by this agent.
 */
export function applyIni(base: AgentConfig, text: string, file: string): { config: AgentConfig; ignored: string[] } {
  const ini = parseIni(text, file);
  const cfg: AgentConfig = { ...base, heartbeatTargets: [...base.heartbeatTargets], configPolicyPaths: [...base.configPolicyPaths] };
  const ignored: string[] = [];
  for (const [section, entries] of ini) {
    for (const [key, { value, line }] of entries) {
      const setter = KNOWN[section]?.[key];
      if (!setter) {
        ignored.push(`${section}.${key}`);
        continue;
      }
      setter(cfg, value, (what) => { throw new ConfigError(file, line, `[${section}] ${key}`, what); });
    }
  }
  return { config: cfg, ignored };
}

export function loadConfigFile(base: AgentConfig, file: string): { config: AgentConfig; ignored: string[] } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, 0, "", `cannot read: ${(e as Error).message}`);
  }
  return applyIni(base, text, file);
}
