// Holds the live configuration and lets UpdateAgentConfig change the mutable
// part of it at run time. Subscribers (the heartbeat sender) get "change".
import { EventEmitter } from "node:events";
import { applyIni, MUTABLE_OPTIONS, type AgentConfig } from "./config.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { invalid } from "../errors.js";
import type { Logger } from "../log.js";
import { KeyedLock } from "../haproxy/keyed-lock.js";

export class ConfigStore extends EventEmitter<{ change: [AgentConfig, AgentConfig] }> {
  constructor(
    private cfg: AgentConfig,
    /** Where an updated config file is written (survives restarts). */
    private readonly file: string,
    private readonly logger: Logger,
  ) {
    super();
  }

  get current(): AgentConfig {
    return this.cfg;
  }

  private readonly lock = new KeyedLock();

  /**
   * Parses a whole new config file. Mutable options are applied at once;
   * changes to the others are stored and take effect at the next start.
   * A malformed file changes nothing. Updates run one at a time, so memory
   * and file end as the same update.
   */
  update(text: string): Promise<{ applied: string[]; restartNeeded: string[] }> {
    return this.lock.run("config", () => this.apply(text));
  }

  private async apply(text: string): Promise<{ applied: string[]; restartNeeded: string[] }> {
    let next: AgentConfig;
    try {
      next = applyIni(this.cfg, text, "uploaded configuration").config;
    } catch (e) {
      throw invalid("Unable to update amphora-agent configuration.", (e as Error).message, "CONFIG_FILE_INVALID");
    }
    const prev = this.cfg;
    const changed = (Object.keys(next) as (keyof AgentConfig)[]).filter(
      (k) => JSON.stringify(next[k]) !== JSON.stringify(prev[k]),
    );
    const mutable = new Set<string>(MUTABLE_OPTIONS);
    const applied = changed.filter((k) => mutable.has(k));
    const restartNeeded = changed.filter((k) => !mutable.has(k));
    await writeFileAtomic(this.file, text, 0o600);
    const live = { ...prev };
    for (const k of applied) (live as Record<string, unknown>)[k] = next[k];
    this.cfg = live;
    this.logger.info({ applied, restartNeeded }, "agent configuration updated");
    if (applied.length) this.emit("change", live, prev);
    return { applied, restartNeeded };
  }
}
