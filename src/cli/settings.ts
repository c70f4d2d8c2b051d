// Where the CLI finds the agent and its credentials, strongest first:
// flags, environment (AMPHORA_*), the chosen profile of the config file, the
// config file's top level, then defaults. --dev-state DIR stands for the dev
// PKI an agent made in DIR (--ca/--cert/--key still win over it).
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { devStateCredentialPaths, type AmphoraProtocol } from "../driver/index.js";
import { UsageError } from "./exit-codes.js";

export const DEFAULT_AGENT = "https://127.0.0.1:9443";

export interface ConnectionSettings {
  agents: string[];
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  protocol: AmphoraProtocol;
  timeoutMs?: number;
  /** Where each value came from, for error messages ("--ca", "AMPHORA_CA", "config file ..."). */
  sources: Partial<Record<"agents" | "ca" | "cert" | "key", string>>;
}

export interface SettingFlags {
  agent?: string[];
  ca?: string;
  cert?: string;
  key?: string;
  "dev-state"?: string;
  "server-name"?: string;
  protocol?: string;
  timeout?: string;
  "cli-config"?: string;
  profile?: string;
}

interface FileSettings {
  agent?: string | string[];
  ca?: string;
  cert?: string;
  key?: string;
  devState?: string;
  serverName?: string;
  protocol?: string;
  timeoutMs?: number;
}

export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "amphora", "cli.json");
}

function loadConfigFile(flags: SettingFlags, env: NodeJS.ProcessEnv): { file?: string; settings: FileSettings } {
  const explicit = flags["cli-config"] ?? env.AMPHORA_CONFIG;
  const file = explicit ?? defaultConfigPath(env);
  if (!existsSync(file)) {
    if (explicit) throw new UsageError(`config file ${file} does not exist (from ${flags["cli-config"] ? "--cli-config" : "AMPHORA_CONFIG"})`);
    return { settings: {} };
  }
  let raw: { profiles?: Record<string, FileSettings>; profile?: string } & FileSettings;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`config file ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new UsageError(`config file ${file}: expected a JSON object`);
  const name = flags.profile ?? env.AMPHORA_PROFILE ?? raw.profile;
  let settings: FileSettings = { ...raw };
  if (name) {
    const p = raw.profiles?.[name];
    if (!p) throw new UsageError(`profile ${JSON.stringify(name)} is not in ${file} (profiles: ${Object.keys(raw.profiles ?? {}).join(", ") || "none"})`);
    settings = { ...settings, ...p };
  }
  // Paths in the file are relative to the file.
  const dir = dirname(file);
  for (const k of ["ca", "cert", "key", "devState"] as const) {
    const v = settings[k];
    if (typeof v === "string" && v !== "" && !isAbsolute(v)) settings[k] = resolve(dir, v.replace(/^~(?=\/)/, homedir()));
  }
  return { file, settings };
}

/** "192.0.2.10" -> "https://192.0.2.10:9443"; full URLs are kept. */
export function normalizeAgentUrl(s: string): string {
  const t = s.trim();
  if (/^[a-z]+:\/\//i.test(t)) return t.replace(/\/+$/, "");
  const hasPort = /^\[[^\]]+\]:\d+$/.test(t) || (/^[^:\]]+:\d+$/.test(t));
  const host = !t.startsWith("[") && (t.match(/:/g) ?? []).length > 1 ? `[${t}]` : t;
  return `https://${hasPort ? t : `${host}:9443`}`;
}

export function resolveSettings(flags: SettingFlags, env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const { file, settings: f } = loadConfigFile(flags, env);
  const fromFile = file ? `config file ${file}` : "";
  const sources: ConnectionSettings["sources"] = {};
  const pick = <T>(key: keyof ConnectionSettings["sources"] | undefined, ...candidates: [T | undefined, string][]): T | undefined => {
    for (const [v, src] of candidates) {
      if (v !== undefined && v !== "" && !(Array.isArray(v) && !v.length)) {
        if (key) sources[key] = src;
        return v;
      }
    }
    return undefined;
  };
  const devState = pick<string>(undefined, [flags["dev-state"], "--dev-state"], [env.AMPHORA_DEV_STATE, "AMPHORA_DEV_STATE"], [f.devState, fromFile]);
  const dev = devState ? devStateCredentialPaths(resolve(devState)) : undefined;
  const devSrc = `--dev-state ${devState}`;
  const envAgents = env.AMPHORA_AGENT?.split(",").map((s) => s.trim()).filter(Boolean);
  const fileAgents = f.agent === undefined ? undefined : Array.isArray(f.agent) ? f.agent : [f.agent];
  const agents = pick<string[]>("agents", [flags.agent, "--agent"], [envAgents, "AMPHORA_AGENT"], [fileAgents, fromFile]) ?? [DEFAULT_AGENT];
  const protocol = pick<string>(undefined, [flags.protocol, ""], [env.AMPHORA_PROTOCOL, ""], [f.protocol, ""]) ?? "connect";
  // "grpcweb" is buf's spelling (buf curl --protocol grpcweb); "grpc-web" stays accepted.
  if (!["connect", "grpc", "grpcweb", "grpc-web"].includes(protocol)) throw new UsageError(`--protocol must be connect, grpc or grpcweb, got ${JSON.stringify(protocol)}`);
  const timeoutRaw = pick<string | number>(undefined, [flags.timeout, ""], [env.AMPHORA_TIMEOUT, ""], [f.timeoutMs, ""]);
  let timeoutMs: number | undefined;
  if (timeoutRaw !== undefined) {
    timeoutMs = Number(timeoutRaw);
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new UsageError(`--timeout must be milliseconds >= 0, got ${JSON.stringify(timeoutRaw)}`);
  }
  return {
    agents: agents.map(normalizeAgentUrl),
    ca: pick("ca", [flags.ca, "--ca"], [env.AMPHORA_CA, "AMPHORA_CA"], [f.ca, fromFile], [dev?.ca, devSrc]),
    cert: pick("cert", [flags.cert, "--cert"], [env.AMPHORA_CERT, "AMPHORA_CERT"], [f.cert, fromFile], [dev?.cert, devSrc]),
    key: pick("key", [flags.key, "--key"], [env.AMPHORA_KEY, "AMPHORA_KEY"], [f.key, fromFile], [dev?.key, devSrc]),
    serverName: pick(undefined, [flags["server-name"], ""], [env.AMPHORA_SERVER_NAME, ""], [f.serverName, ""]),
    protocol: protocol as AmphoraProtocol,
    timeoutMs,
    sources,
  };
}
