// Start, reload and stop of one load balancer's haproxy master, called by
// the manager (and the supervisor's restarts) under the load balancer's
// lock: the process side of each action and what it records (history,
// served and last good config, wanted state, events). Masters are known by
// identity (masters.ts); a start never runs beside another master of the
// load balancer, and one that fails half-way ends what it left. A reload
// first compares the stored config with the served one: identical or
// server-only changes are applied on the running worker through the master
// CLI (runtime-apply.ts), anything else reloads.
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { DomainError, failed } from "../errors.js";
import type { Logger } from "../log.js";
import type { LoadBalancerEvent } from "./catalog.js";
import { userGroupFile, type LbPaths } from "./layout.js";
import { markGood, md5, noteAction, readConfig, rollBack, saveMeta } from "./config-store.js";
import { parseConfigFacts } from "./config-facts.js";
import { peerName } from "./peer-name.js";
import { currentWorker, readPid, reloadMaster, removeRunFiles, showProc, startMaster, type MasterOptions, type ReloadOutcome } from "./master.js";
import { endMasters, identify, mastersOf, stillRuns, type MasterIdentity } from "./masters.js";
import { memAvailableBytes, residentBytes } from "./proc-fs.js";
import type { ShowProc } from "./show-proc.js";
import type { Supervisor } from "./supervisor.js";
import { saveServerState } from "./server-state.js";
import { seconds, setMaster, type Lb } from "./lb-state.js";
import { applyWithoutReload, type ApplyDecision, type ApplyOptions } from "./runtime-apply.js";

export interface LifecycleOptions {
  stateDir: string;
  /** Read at every use so a changed agent config applies. */
  settings: () => { haproxyCmd: string; netns: string; amphoraId?: string };
  /** Memory that must stay free after a reload's second set of workers (default 32 MiB); read at every reload. */
  memoryReserveBytes?: number;
  /** Reload-free apply of server changes (issue 13); `enabled: false` always reloads; read at every reload. */
  runtimeApply?: ApplyOptions & { enabled?: boolean };
}

/** A reload is needed; `served`: the text the running worker serves, when known (its saved server states follow the config). */
type Reload = Extract<ApplyDecision, { method: "reload" }> & { served?: string };

export class LbLifecycle {
  constructor(
    private readonly o: LifecycleOptions,
    private readonly supervisor: Supervisor,
    private readonly emit: (e: LoadBalancerEvent) => void,
    private readonly logger: Logger,
  ) {}

  masterOptions(lb: Lb): MasterOptions {
    const s = this.o.settings();
    return {
      haproxyCmd: s.haproxyCmd,
      netns: s.netns,
      // Metadata rebuilt after a crash may lack the upload's amphora id.
      peer: peerName(lb.meta.amphoraId || s.amphoraId || ""),
      config: lb.paths.config,
      userGroupFile: userGroupFile(this.o.stateDir),
      pidFile: lb.paths.pidFile,
      masterSocket: lb.paths.masterSocket,
      logger: this.logger,
    };
  }

  /**
   * Under the lock. `how`: "start" asked by the controller; "restart" after
   * haproxy exited on its own; "resume" at agent start for one that should
   * run. Never starts a second master: whatever of this load balancer still
   * runs and is not the agent's is ended first, and a start that fails
   * half-way (its launcher killed or timed out after haproxy forked its
   * master) ends what it left.
   */
  async start(lb: Lb, how: "start" | "restart" | "resume" = "start"): Promise<string> {
    const startedAt = performance.now();
    if (lb.master && (await stillRuns(lb.master))) {
      return `haproxy already running (serving config version ${lb.meta.served?.version ?? "unknown"})`;
    }
    setMaster(lb, undefined);
    await this.supervisor.endStrays(lb.id, await mastersOf(lb.paths.pidFile), "still running at a start");
    // The controller's start replaces any restart plan (and its backoff).
    if (how === "start") this.supervisor.backoff.reset(lb.id);
    let p: ShowProc;
    try {
      p = await startMaster(this.masterOptions(lb));
      setMaster(lb, await this.identifyStarted(lb, p));
    } catch (e) {
      await this.afterFailedStart(lb, e);
      const why = e instanceof DomainError && e.details ? `${e.message}: ${e.details}` : (e as Error).message;
      // Wanted running (a restart, or a start after one): try again later,
      // as an enabled systemd unit would, until the controller stops it.
      const retry = lb.meta.wanted === "running" && !lb.running && !this.supervisor.closed;
      // One history entry per run of failures, so they do not push out the rest.
      const first = this.supervisor.backoff.failures(lb.id) === 0;
      const delayMs = retry ? this.supervisor.backoff.afterFailure(lb.id) : 0;
      const plan = retry ? `; trying again in ${seconds(delayMs)}${first ? " (and on, until stopped; further failures are only logged)" : ""}` : "";
      // Planned first: a metadata write that fails (a full disk) must not
      // end supervision, nor hide the start error from the caller.
      if (retry) this.supervisor.planRestart(lb, delayMs);
      if (how === "start" || first) {
        noteAction(lb.meta, "START", false, `${how === "start" ? "" : `${how} `}start failed: ${why}${plan}`, startedAt);
        await saveMeta(lb.paths, lb.meta).catch((w: Error) =>
          this.logger.error({ lbId: lb.id, err: w.message }, "could not store the metadata after a failed start"));
      }
      if (e instanceof DomainError) throw e;
      throw failed("Error starting haproxy", (e as Error).message, "HAPROXY_START_FAILED");
    }
    // haproxy runs: from here a write that fails (a full disk) is no failed
    // start (nothing to retry, nothing to end); listeners hear of it either way.
    lb.proc = p;
    lb.meta.wanted = "running";
    if (how === "restart") lb.meta.restarts = (lb.meta.restarts ?? 0) + 1;
    this.supervisor.backoff.started(lb.id);
    lb.meta.lastApply = { method: "start", reason: "", atMs: Date.now() };
    const lastGood = await markGood(lb.paths, lb.meta).then(() => undefined, (w: Error) => w);
    const what = how === "restart" ? `restarted after haproxy exited on its own (automatic restart ${lb.meta.restarts}): `
      : how === "resume" ? "started at agent start (wanted running, was not running): " : "";
    noteAction(lb.meta, "START", true, `${what}started config version ${lb.meta.version} (master ${p.master.pid})`, startedAt);
    const notStored = (await saveMeta(lb.paths, lb.meta).then(() => undefined, (w: Error) => w)) ?? lastGood;
    this.emit({ type: "started", lbId: lb.id, version: lb.meta.version, md5: lb.meta.md5, cause: how, restarts: lb.meta.restarts ?? 0 });
    if (notStored) {
      this.logger.error({ lbId: lb.id, err: notStored.message }, "haproxy started, but its metadata could not be stored");
      // The controller asked: it must know the wanted state may not survive a reboot.
      if (how === "start") throw failed("haproxy started, but its state could not be stored", notStored.message, "STORE_FAILED");
    }
    return `haproxy started with config version ${lb.meta.version}`;
  }

  /**
   * The identity of the master a start just brought up, as `show proc` on
   * its socket names it, cross-checked in /proc (its command line names
   * this load balancer's pid file); the pid file is written for it if
   * haproxy has not (yet).
   */
  private async identifyStarted(lb: Lb, p: ShowProc): Promise<MasterIdentity> {
    const m = await identify(p.master.pid, lb.paths.pidFile);
    if (!m) throw failed("Error starting haproxy", `haproxy exited right after start (its master ${p.master.pid}, named by show proc, is gone)`, "HAPROXY_START_FAILED");
    if ((await readPid(lb.paths.pidFile)) !== m.pid) {
      // For the keepalived check and operators; the agent itself goes by the identity.
      await writeFileAtomic(lb.paths.pidFile, `${m.pid}\n`, 0o644, { createDir: false }).catch((e: Error) =>
        this.logger.warn({ lbId: lb.id, pid: m.pid, err: e.message }, "could not write the pid file of the started master"));
    }
    return m;
  }

  /**
   * A start failed: a master it left running (haproxy forked it, then the
   * launcher was killed or timed out, or it never became ready) is kept
   * only when it is alone and merely slow to become ready; anything else
   * of this load balancer is ended, so the next start binds its ports.
   */
  private async afterFailedStart(lb: Lb, e: unknown): Promise<void> {
    const left = await mastersOf(lb.paths.pidFile);
    if (left.length === 1 && e instanceof DomainError && e.reason === "HAPROXY_NOT_READY") {
      setMaster(lb, left[0]);
      return;
    }
    setMaster(lb, undefined);
    await this.supervisor.endStrays(lb.id, left, "left by a start that failed");
    await removeRunFiles(lb.paths);
  }

  /** Refuses a reload whose second set of workers would not fit in memory. */
  private async checkHeadroom(proc: ShowProc): Promise<void> {
    const w = currentWorker(proc);
    if (!w) return;
    const [need, available] = await Promise.all([residentBytes(w.pid), memAvailableBytes()]);
    const reserve = this.o.memoryReserveBytes ?? 32 * 1024 * 1024;
    if (need + reserve > available) {
      const mib = (n: number) => `${Math.round(n / 1048576)} MiB`;
      throw new DomainError(
        "exhausted",
        `reload refused: the running haproxy worker uses ${mib(need)}, only ${mib(available)} are available and ${mib(reserve)} must stay free; old and new workers would not fit side by side (force to reload anyway)`,
        `worker ${w.pid} rss ${need} bytes, MemAvailable ${available} bytes, reserve ${reserve} bytes`,
        "MEMORY_HEADROOM",
      );
    }
  }

  async reload(lb: Lb, force: boolean): Promise<string> {
    const startedAt = performance.now();
    if (lb.error) throw new DomainError("unavailable", `cannot reload: ${lb.error}`, "", "MASTER_UNREACHABLE");
    const master = lb.master!;
    const opts = this.masterOptions(lb);
    const masterRuns = () => stillRuns(master);
    const [proc, text] = await Promise.all([
      showProc(opts.masterSocket).catch(async (e: Error) => ((await masterRuns()) ? Promise.reject(e) : undefined)),
      readConfig(lb.paths),
    ]);
    // Reload-free first: nothing to do, or server changes through the runtime API.
    const d = proc ? await this.decide(lb, opts, proc, text) : undefined;
    if (d && d.method !== "reload") return this.appliedAtRuntime(lb, d, text, startedAt);
    const r = proc ? await this.reloadRunning(lb, opts, proc, text, force, masterRuns, d as Reload) : undefined;
    if (!r || r.masterExited) {
      // Killed or crashed just before or during the reload: not the
      // config's fault, so no rollback. The supervisor starts it again
      // (with this config) when it is wanted running.
      const details = r?.details ?? "the haproxy master exited before the reload";
      const failedVersion = lb.meta.version;
      await this.supervisor.noticeExit(lb, `haproxy master exited during a reload to config version ${lb.meta.version}`).catch((e: Error) =>
        this.logger.error({ lbId: lb.id, err: e.message }, "could not record the exit"));
      this.emit({ type: "reload_failed", lbId: lb.id, version: failedVersion, reason: details });
      throw new DomainError("unavailable", "Error reloading haproxy", `${details}; it is started again when wanted running`, "MASTER_EXITED");
    }
    if (r.ok) {
      const reason = (d as Reload).reason;
      lb.meta.lastApply = { method: "reload", reason, atMs: Date.now() };
      noteAction(lb.meta, "RELOAD", true, `reloaded to config version ${lb.meta.version} (${reason})`, startedAt);
      // Both at once: the metadata may name a last-good copy not yet
      // replaced only for an instant, and a rollback checks the md5 anyway.
      // allSettled: the answer waits for both, so a write that failed has
      // removed its temp file before the caller hears of it.
      const writes = await Promise.allSettled([markGood(lb.paths, lb.meta, text), saveMeta(lb.paths, lb.meta, { durable: false })]);
      const stored = writes.map((w) => (w.status === "rejected" ? (w.reason as Error) : undefined)).find(Boolean);
      this.emit({ type: "reloaded", lbId: lb.id, version: lb.meta.version, md5: lb.meta.md5, method: "reload", reason });
      if (stored) {
        // haproxy did reload: that is the answer. What could not be written
        // (a full disk) is said, and the next agent start reconciles the
        // record from what runs (Supervisor.adopt).
        this.logger.error({ lbId: lb.id, err: stored.message }, "haproxy reloaded, but its state could not be recorded");
        return `haproxy reloaded with config version ${lb.meta.version} (${reason}); warning: its state could not be recorded (${stored.message}); the agent reconciles it from what runs at its next start`;
      }
      return `haproxy reloaded with config version ${lb.meta.version} (${reason})`;
    }
    // Roll the stored config back to the last one haproxy accepted, so the
    // next reload (or a restart) does not pick up the bad one.
    const failedVersion = lb.meta.version;
    const rb = await rollBack(lb.paths, lb.meta);
    if (rb.kind === "missing") {
      noteAction(lb.meta, "RELOAD", false, `reload failed: ${r.details}; the last good config is missing or damaged, nothing rolled back`, startedAt);
      await saveMeta(lb.paths, lb.meta);
      this.emit({ type: "reload_failed", lbId: lb.id, version: failedVersion, reason: r.details });
      throw failed("Error reloading haproxy", lb.meta.lastAction ?? "", "RELOAD_FAILED");
    }
    const rolledBack = rb.kind === "done" ? `; ${rb.note}` : "";
    if (rb.kind === "done") lb.listeners = parseConfigFacts(rb.text).listeners;
    noteAction(lb.meta, "RELOAD", false, `reload failed: ${r.details}${rolledBack}`, startedAt);
    await saveMeta(lb.paths, lb.meta);
    this.emit({
      type: "reload_failed", lbId: lb.id, version: failedVersion, reason: r.details,
      rolledBack: rb.kind === "done" ? { restoredVersion: lb.meta.lastGood?.version ?? 0, storedVersion: lb.meta.version } : undefined,
    });
    throw failed("Error reloading haproxy", `${r.details}${rolledBack}`, "RELOAD_FAILED");
  }

  /** Every master of this load balancer: the agent's and any stray (a leftover of an earlier race). */
  async allMasters(lb: Lb | undefined, paths: LbPaths): Promise<MasterIdentity[]> {
    const found = await mastersOf(paths.pidFile);
    if (lb?.master && !found.some((m) => m.pid === lb.master!.pid)) found.push(lb.master);
    return found;
  }

  /**
   * Whether the running worker can be brought to the stored config without
   * a reload: compares it with the served one and, for server-only
   * changes, applies them through the master CLI to the current worker
   * (under the load balancer's lock, like every action) and verifies them.
   */
  private async decide(lb: Lb, opts: MasterOptions, proc: ShowProc, text: string): Promise<ApplyDecision | Reload> {
    const ra = this.o.runtimeApply;
    // Also when runtime apply is off: the saved server states follow the config (earlier runtime applies).
    const served = await this.servedText(lb);
    if (ra?.enabled === false) return { method: "reload", reason: "runtime apply is off", runtimeTried: false, served };
    const worker = currentWorker(proc);
    if (served === undefined || !worker) return { method: "reload", reason: "the config the running haproxy serves is not known", runtimeTried: false };
    const d = await applyWithoutReload({ masterSocket: opts.masterSocket, workerPid: worker.pid }, served, text, ra);
    return d.method === "reload" ? { ...d, served } : d;
  }

  /** The text of the config the running worker serves, when its copy (the last good one) is certain. */
  private async servedText(lb: Lb): Promise<string | undefined> {
    const s = lb.meta.served;
    if (!s || lb.meta.lastGood?.md5 !== s.md5) return undefined;
    const text = await readFile(lb.paths.lastGood, "utf8").catch(() => undefined);
    return text !== undefined && md5(text) === s.md5 ? text : undefined;
  }

  /** The worker runs the stored config without a reload (nothing to change, or changed at runtime): recorded as served. */
  private async appliedAtRuntime(lb: Lb, d: Exclude<ApplyDecision, { method: "reload" }>, text: string, startedAt: number): Promise<string> {
    const what = d.method === "none" ? "nothing to apply" : `applied at runtime (${d.summary}; ${d.commands} commands)`;
    lb.meta.lastApply = { method: "runtime", reason: what, atMs: Date.now() };
    // Still written (as before a reload): whatever reloads or restarts
    // haproxy next finds the states of the config it now runs.
    await saveServerState(this.o.stateDir, lb.id, lb.paths, text, this.logger, { served: text });
    noteAction(lb.meta, "RELOAD", true, `config version ${lb.meta.version}: ${what}, no reload`, startedAt);
    const writes = await Promise.allSettled([markGood(lb.paths, lb.meta, text), saveMeta(lb.paths, lb.meta, { durable: false })]);
    const stored = writes.map((w) => (w.status === "rejected" ? (w.reason as Error) : undefined)).find(Boolean);
    this.emit({ type: "reloaded", lbId: lb.id, version: lb.meta.version, md5: lb.meta.md5, method: "runtime", reason: what });
    if (stored) {
      this.logger.error({ lbId: lb.id, err: stored.message }, "config applied at runtime, but its state could not be recorded");
      // After an agent restart the record on disk no longer vouches for the
      // served config: the next reload then reloads in full (servedText).
      return `config version ${lb.meta.version} runs: ${what}, no reload; warning: its state could not be recorded (${stored.message}); after an agent restart the next reload is a full one`;
    }
    return `config version ${lb.meta.version} runs: ${what}, no reload`;
  }

  /**
   * Headroom check, server states, then the reload itself, confirmed by
   * `show proc`. A worker half-changed by a failed runtime step must reach
   * the stored config whatever the memory check says; its saved states
   * follow the config.
   */
  private async reloadRunning(
    lb: Lb, opts: MasterOptions, proc: ShowProc, text: string, force: boolean, masterRuns: () => Promise<boolean>, d: Reload,
  ): Promise<ReloadOutcome> {
    if (!force && !d.runtimeTried) await this.checkHeadroom(proc);
    await saveServerState(this.o.stateDir, lb.id, lb.paths, text, this.logger, { served: d.served, all: d.runtimeTried });
    lb.proc = proc;
    const r = await reloadMaster(opts, proc, masterRuns);
    lb.proc = r.after;
    return r;
  }

  async stop(lb: Lb, timeoutMs: number): Promise<string> {
    const startedAt = performance.now();
    const how = await endMasters(await this.allMasters(lb, lb.paths), timeoutMs).catch((e: Error) => {
      throw new DomainError("failed", e.message);
    });
    await removeRunFiles(lb.paths);
    const was = lb.running;
    const wasWanted = lb.meta.wanted === "running";
    setMaster(lb, undefined);
    lb.meta.served = undefined;
    // Stays stopped across crashes and reboots; a planned restart is off.
    lb.meta.wanted = "stopped";
    this.supervisor.backoff.reset(lb.id);
    noteAction(lb.meta, "STOP", true, how === "not-running" ? "stop: was not running" : `stopped (${how})`, startedAt);
    await saveMeta(lb.paths, lb.meta);
    // Also when only the wanted state changed (its haproxy had died): the
    // keepalived check follows the catalog's wanted state on these events.
    if (was || wasWanted || how !== "not-running") this.emit({ type: "stopped", lbId: lb.id, cause: "stop" });
    return how === "not-running" ? "haproxy was not running" : `haproxy stopped (${how})`;
  }
}
