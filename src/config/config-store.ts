// Holds the live configuration and lets UpdateAgentConfig change the mutable
// part of it at run time. Subscribers (the heartbeat sender) get "change".
//
// The uploaded file replaces the stored one, which the next start reads.
// Two things keep that honest:
// - agent-local options (LOCAL_OPTIONS: set by an operator, never rendered
//   by the controller) that the stored file has and the upload lacks are
//   carried over into the written file, so a controller's update does not
//   silently drop them at the next restart;
// - the answer lists every option whose value after a restart would differ
//   from the live one (changed options that need a restart, and options the
//   upload lacks that would fall back to their defaults).
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { applyIni, defaultConfig, LOCAL_OPTIONS, MUTABLE_OPTIONS, OPERATOR_ONLY, parseIni, type AgentConfig } from "./config.js";
import { checkStartable, type ConfigFallback } from "./config-check.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { invalid } from "../errors.js";
import type { Logger } from "../log.js";
import { KeyedLock } from "../system/keyed-lock.js";

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * What a start makes of `text`: defaults, then the file, then what start
 * derives (no flags). With the same defaults as the start (buildConfig in
 * agent.ts): --dev has no namespace and ./state by default.
 */
function fromFile(text: string, dev: boolean): AgentConfig {
  const c = applyIni(devAware(dev), text, "configuration").config;
  if (!c.certDir) c.certDir = join(c.stateDir, "certs");
  return c;
}

const devAware = (dev: boolean) => defaultConfig(dev ? resolve("state") : undefined, { dev });

/** Set at start only where the file leaves them empty (dev PKI and amphora id), not over it. */
const GAP_FILLERS = new Set<keyof AgentConfig>(["serverCaFile", "serverCertFile", "amphoraId"]);

/** The upload plus the agent-local options of `stored` that it lacks (appended under their sections). */
export function keepLocalOptions(stored: string, upload: string): { text: string; kept: string[] } {
  let old;
  try {
    old = parseIni(stored, "stored configuration");
  } catch {
    return { text: upload, kept: [] };
  }
  const next = parseIni(upload, "uploaded configuration");
  const kept: string[] = [];
  const lines: string[] = [];
  for (const [section, key] of LOCAL_OPTIONS) {
    const v = old.get(section)?.get(key);
    if (!v || next.get(section)?.has(key)) continue;
    kept.push(`${section}.${key}`);
    // A repeated section header adds to that section (parseIni merges them).
    lines.push(`[${section}]`, `${key} = ${v.value}`);
  }
  if (!lines.length) return { text: upload, kept };
  const sep = upload.endsWith("\n") || upload === "" ? "" : "\n";
  return {
    text: `${upload}${sep}\n# Kept by amphora-agent from the previous file: agent-local options the controller does not render.\n${lines.join("\n")}\n`,
    kept,
  };
}

export class ConfigStore extends EventEmitter<{ change: [AgentConfig, AgentConfig] }> {
  /** Values the start set over the file (command-line flags, dev PKI): a restart sets them again. */
  private readonly pinned: Partial<AgentConfig>;

  constructor(
    private cfg: AgentConfig,
    /** Where an updated config file is written (survives restarts). */
    private readonly file: string,
    private readonly logger: Logger,
    /** Started with --dev (its defaults differ: see fromFile); `fallback`: the file could not start the agent (agent.ts). */
    private readonly o: { dev?: boolean; fallback?: ConfigFallback } = {},
  ) {
    super();
    let started = "";
    try {
      started = readFileSync(file, "utf8");
    } catch {
      // No file at start: everything not default came from flags.
    }
    let view: AgentConfig;
    try {
      view = fromFile(started, !!o.dev);
    } catch {
      view = devAware(!!o.dev);
    }
    const pinned: Record<string, unknown> = {};
    for (const k of Object.keys(cfg) as (keyof AgentConfig)[]) if (!same(cfg[k], view[k])) pinned[k] = cfg[k];
    this.pinned = pinned as Partial<AgentConfig>;
  }

  get current(): AgentConfig {
    return this.cfg;
  }

  /** Set when the configuration file could not start the agent and the last one that did was used. */
  get fallback(): ConfigFallback | undefined {
    return this.o.fallback;
  }

  private readonly lock = new KeyedLock();

  /**
   * Parses a whole new config file. Mutable options are applied at once;
   * changes to the others are stored and take effect at the next start.
   * A malformed file changes nothing. Updates run one at a time, so memory
   * and file end as the same update.
   */
  update(text: string): Promise<{ applied: string[]; restartNeeded: string[]; kept: string[] }> {
    return this.lock.run("config", () => this.apply(text));
  }

  private async apply(text: string): Promise<{ applied: string[]; restartNeeded: string[]; kept: string[] }> {
    let next: AgentConfig;
    try {
      next = applyIni(this.cfg, text, "uploaded configuration").config;
    } catch (e) {
      throw invalid("Unable to update amphora-agent configuration.", (e as Error).message, "CONFIG_FILE_INVALID");
    }
    const prev = this.cfg;
    const mutable = new Set<string>(MUTABLE_OPTIONS);
    const applied = (Object.keys(next) as (keyof AgentConfig)[]).filter((k) => mutable.has(k) && !same(next[k], prev[k]));
    const stored = await readFile(this.file, "utf8").catch(() => "");
    const { text: written, kept } = keepLocalOptions(stored, text);
    // What the next start will run with, compared with what runs now.
    const atRestart = fromFile(written, !!this.o.dev);
    for (const [k, v] of Object.entries(this.pinned) as [keyof AgentConfig, unknown][]) {
      if (!GAP_FILLERS.has(k) || !atRestart[k]) (atRestart as unknown as Record<string, unknown>)[k] = v;
    }
    // A controller cannot switch off the policy that limits it.
    const operatorOnly = OPERATOR_ONLY.filter((k) => !same(atRestart[k], prev[k]));
    if (operatorOnly.length) {
      throw invalid("Unable to update amphora-agent configuration.", `only an operator may change ${operatorOnly.join(", ")} (the config policy, connection limits and controller certificate rules), in the file on the amphora`, "OPERATOR_ONLY");
    }
    // Stored only if the agent could start with it (exactly the start's check).
    try {
      await checkStartable(atRestart);
    } catch (e) {
      throw invalid("Unable to update amphora-agent configuration.", `the agent could not start with this configuration, so it is not stored: ${(e as Error).message}`, "CONFIG_NOT_STARTABLE");
    }
    await writeFileAtomic(this.file, written, 0o600);
    const live = { ...prev };
    for (const k of applied) (live as Record<string, unknown>)[k] = next[k];
    this.cfg = live;
    const restartNeeded = (Object.keys(live) as (keyof AgentConfig)[]).filter((k) => !same(atRestart[k], live[k]));
    this.logger.info({ applied, restartNeeded, kept }, "agent configuration updated");
    if (applied.length) this.emit("change", live, prev);
    return { applied, restartNeeded, kept };
  }
}
