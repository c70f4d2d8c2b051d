// The load balancers this agent manages: orders, under each load
// balancer's lock, the config store (config-store.ts: versions, metadata,
// last good, rollback), process control of its one haproxy master
// (master.ts, known by identity: masters.ts), supervision (supervisor.ts:
// adoption, watch, restarts) and status reads (status-reads.ts).
// Implements the LoadBalancerCatalog other modules read.
import { EventEmitter } from "node:events";
import { mkdir, readdir, rm } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { DomainError, conflict, failed, invalid, notFound } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "./catalog.js";
import { KeyedLock } from "./keyed-lock.js";
import { lbPaths, lbRoot, scratchDir, userGroupFile, checkLbId, type LbPaths } from "./layout.js";
import { markGood, md5, noteAction, readConfig, rollBack, saveMeta, storeConfig } from "./config-store.js";
import { parseConfigFacts } from "./config-facts.js";
import { peerName } from "./peer-name.js";
import { userGroupConfig } from "./user-group.js";
import { validateConfig } from "./validate.js";
import { currentWorker, readPid, reloadMaster, removeRunFiles, showProc, startMaster, type MasterOptions, type ReloadOutcome } from "./master.js";
import { endMasters, identify, mastersOf, stillRuns, type MasterIdentity } from "./masters.js";
import { memAvailableBytes, residentBytes } from "./proc-fs.js";
import type { ShowProc } from "./show-proc.js";
import type { BackoffOptions } from "./restart-backoff.js";
import { Supervisor } from "./supervisor.js";
import { saveServerState, serverStateNote } from "./server-state.js";
import { lbStatus, listenerStatuses, type LbStatus, type ListenerStatus } from "./status-reads.js";
import { seconds, setMaster, type Lb } from "./lb-state.js";

export type { LbStatus, ListenerStatus, WorkerInfo } from "./status-reads.js";

export type LbAction = "start" | "stop" | "reload";

export interface ManagerOptions {
  stateDir: string;
  certDir: string;
  /** Read at every use so a changed agent config applies (defaults below). */
  settings: () => { haproxyCmd: string; netns: string; amphoraId?: string };
  logger?: Logger;
  /** Memory that must stay free after a reload's second set of workers (default 32 MiB). */
  memoryReserveBytes?: number;
  /** Graceful stop wait before SIGTERM (default 10 s). */
  stopTimeoutMs?: number;
  /**
   * How often to notice a haproxy that died on its own, or a stray master
   * (default 1 s; 0 = never). One pass over /proc; the time to notice adds
   * to the restart delay.
   */
  watchIntervalMs?: number;
  /** Delay before restarting a haproxy that died: doubles in a crash loop (default 1 s to 30 s). */
  restartBackoff?: BackoffOptions;
  /** How long `haproxy -c` may take before the upload is refused as unavailable (default 30 s). */
  validateTimeoutMs?: number;
}

export interface Guard {
  expectedVersion?: number;
  expectedMd5?: string;
}

export class LoadBalancerManager extends EventEmitter<{ event: [LoadBalancerEvent] }> implements LoadBalancerCatalog {
  private readonly lbs = new Map<string, Lb>();
  /** Per load balancer; the certificate store shares it. */
  readonly lock = new KeyedLock();
  private readonly logger: Logger;
  private readonly supervisor: Supervisor;
  /** Set when this machine lacks nobody/nogroup (see user-group.ts). */
  userGroupNote = "";

  private constructor(private readonly o: ManagerOptions) {
    super();
    this.logger = o.logger ?? silentLogger;
    this.supervisor = new Supervisor({
      stateDir: o.stateDir,
      certDir: o.certDir,
      lbs: this.lbs,
      lock: this.lock,
      logger: this.logger,
      emit: (e) => this.emitEvent(e),
      start: (lb, how) => this.doStart(lb, how),
    }, { watchIntervalMs: o.watchIntervalMs, restartBackoff: o.restartBackoff });
  }

  /** Prepares the state folder, re-adopts every load balancer found there and ends strays. */
  static async open(o: ManagerOptions): Promise<LoadBalancerManager> {
    const m = new LoadBalancerManager(o);
    await m.init();
    return m;
  }

  get stateDir(): string {
    return this.o.stateDir;
  }

  get certDir(): string {
    return this.o.certDir;
  }

  paths(lbId: string): LbPaths {
    return lbPaths(this.o.stateDir, this.o.certDir, lbId);
  }

  private async init(): Promise<void> {
    await mkdir(lbRoot(this.o.stateDir), { recursive: true, mode: 0o700 });
    await mkdir(scratchDir(this.o.stateDir), { recursive: true, mode: 0o700 });
    await mkdir(this.o.certDir, { recursive: true, mode: 0o700 });
    const ug = await userGroupConfig();
    this.userGroupNote = ug.note;
    if (ug.note) this.logger.warn(ug.note);
    await writeFileAtomic(userGroupFile(this.o.stateDir), ug.text, 0o644);
    // Leftover candidates of a crash mid-upload.
    for (const f of await readdir(scratchDir(this.o.stateDir))) await rm(`${scratchDir(this.o.stateDir)}/${f}`, { force: true });
    await this.supervisor.adoptAll(await readdir(lbRoot(this.o.stateDir)));
    this.supervisor.startWatching();
  }

  /**
   * At agent start, once the network namespace and its interfaces are back:
   * starts every load balancer the controller wants running whose haproxy
   * does not run (see Supervisor.resume).
   */
  resume(): Promise<{ started: string[]; failed: string[] }> {
    return this.supervisor.resume();
  }

  /** Changes the memory that must stay free after a reload (operators, tests). */
  setMemoryReserveBytes(bytes: number): void {
    this.o.memoryReserveBytes = bytes;
  }

  /**
   * Ends the watch and every planned restart (haproxy itself keeps
   * running); resolves once a restart already under way has finished.
   */
  close(): Promise<void> {
    return this.supervisor.close();
  }

  /**
   * Tells every listener; one that throws (or rejects) is logged and never
   * turns the action that happened into a failure, nor keeps the others
   * from hearing of it.
   */
  private emitEvent(e: LoadBalancerEvent): void {
    // rawListeners: calling a `once` wrapper also removes it, as emit would.
    for (const l of this.rawListeners("event") as ((e: LoadBalancerEvent) => unknown)[]) {
      const logFailure = (err: unknown) =>
        this.logger.error({ lbId: e.lbId, event: e.type, err: err instanceof Error ? err.message : String(err) }, "load balancer event listener failed");
      try {
        const r = l.call(this, e);
        if (r && typeof (r as Promise<unknown>).then === "function") (r as Promise<unknown>).then(undefined, logFailure);
      } catch (err) {
        logFailure(err);
      }
    }
  }

  // ---- catalog -------------------------------------------------------------

  list(): LoadBalancerRef[] {
    return [...this.lbs.values()].map((lb) => this.ref(lb));
  }

  get(lbId: string): LoadBalancerRef | undefined {
    const lb = this.lbs.get(lbId.toLowerCase());
    return lb ? this.ref(lb) : undefined;
  }

  private ref(lb: Lb): LoadBalancerRef {
    return { lbId: lb.id, masterSocket: lb.paths.masterSocket, running: lb.running, listenerIds: lb.listeners.map((l) => l.id) };
  }

  wantedRunning(): string[] {
    return [...this.lbs.values()].filter((lb) => lb.meta.wanted === "running").map((lb) => lb.id);
  }

  // ---- LoadBalancerFacts (system details) ---------------------------------

  async runningCount(): Promise<number> {
    return [...this.lbs.values()].filter((lb) => lb.running).length;
  }

  async listenerIds(): Promise<string[]> {
    return [...this.lbs.values()].flatMap((lb) => lb.listeners.map((l) => l.id));
  }

  // ---- statuses (outside the lock: status-reads.ts) --------------------------

  listListeners(): Promise<ListenerStatus[]> {
    return listenerStatuses(this.lbs.values());
  }

  async listStatus(): Promise<LbStatus[]> {
    return Promise.all([...this.lbs.keys()].map((id) => this.status(id)));
  }

  status(lbId: string): Promise<LbStatus> {
    const lb = this.require(lbId);
    return lbStatus(lb, this.supervisor.backoff.pending(lb.id));
  }

  // ---- operations ------------------------------------------------------------

  private checkGuard(lb: Lb | undefined, g: Guard): void {
    const version = lb?.meta.version ?? 0;
    const sum = lb?.meta.md5 ?? "";
    if (g.expectedVersion !== undefined && g.expectedVersion !== version) {
      throw conflict(`config version is ${version}, not the expected ${g.expectedVersion}`, `current md5 ${sum || "(none)"}`, "VERSION_MISMATCH");
    }
    if (g.expectedMd5 !== undefined && g.expectedMd5.toLowerCase() !== sum) {
      throw conflict(`config md5 is ${sum || "(none)"}, not the expected ${g.expectedMd5}`, `current version ${version}`, "MD5_MISMATCH");
    }
  }

  private masterOptions(lb: Lb): MasterOptions {
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
   * Validates with `haproxy -c` and stores the config atomically. Nothing
   * changes on disk when validation or storing fails. Does not reload.
   */
  async putConfig(amphoraId: string, lbId: string, text: string, guard: Guard = {}): Promise<{ md5: string; version: number; changed: boolean; warnings: string }> {
    const id = checkLbId(lbId);
    return this.lock.run(id, async () => {
      const startedAt = performance.now();
      const existing = this.lbs.get(id);
      this.checkGuard(existing, guard);
      const sum = md5(text);
      if (existing && existing.meta.md5 === sum && existing.meta.amphoraId === amphoraId) {
        return { md5: sum, version: existing.meta.version, changed: false, warnings: "" };
      }
      const paths = this.paths(id);
      const { warnings: haproxyWarnings } = await validateConfig(text, {
        haproxyCmd: this.o.settings().haproxyCmd,
        scratchDir: scratchDir(this.o.stateDir),
        userGroupFile: userGroupFile(this.o.stateDir),
        peer: peerName(amphoraId),
        displayName: `haproxy.cfg of load balancer ${id}`,
        logger: this.logger,
        timeoutMs: this.o.validateTimeoutMs,
      });
      const stateNote = serverStateNote(this.o.stateDir, paths, parseConfigFacts(text).serverStateFile);
      const warnings = [haproxyWarnings, stateNote].filter(Boolean).join("\n");
      const meta = await storeConfig(paths, existing?.meta, id, amphoraId, text, startedAt, this.logger);
      const listeners = parseConfigFacts(text).listeners;
      if (existing) {
        existing.meta = meta;
        existing.listeners = listeners;
      } else {
        this.lbs.set(id, { id, paths, meta, listeners, running: false, busy: 0 });
        this.emitEvent({ type: "created", lbId: id });
      }
      return { md5: sum, version: meta.version, changed: true, warnings };
    });
  }

  async getConfig(lbId: string): Promise<{ config: string; md5: string; version: number }> {
    const id = checkLbId(lbId);
    // Under the lock: a delete in flight ends before the read, so the caller
    // gets "not found" rather than a file that vanished under it (ENOENT).
    return this.lock.run(id, async () => {
      const lb = this.require(id);
      const config = await readConfig(lb.paths);
      return { config, md5: md5(config), version: lb.meta.version };
    });
  }

  private require(lbId: string): Lb {
    const lb = this.lbs.get(checkLbId(lbId));
    if (!lb) throw notFound("Loadbalancer Not Found", `no configuration stored for load balancer ${lbId}`, "LB_NOT_FOUND");
    return lb;
  }

  async control(lbId: string, action: string, o: Guard & { force?: boolean; stopTimeoutMs?: number } = {}): Promise<{ message: string; details: string; version: number }> {
    if (action !== "start" && action !== "stop" && action !== "reload") {
      throw invalid("Invalid Request", `Unknown action: ${action}`, "UNKNOWN_ACTION");
    }
    const id = checkLbId(lbId);
    return this.lock.run(id, async () => {
      const lb = this.require(id);
      this.checkGuard(lb, o);
      // What runs now, by identity: a master that died is recorded, strays
      // end (before a reload of a running one only the identity is checked).
      await this.supervisor.refresh(lb, { quick: action === "reload" });
      let details: string;
      lb.busy++;
      try {
        if (action === "stop") details = await this.doStop(lb, o.stopTimeoutMs ?? this.o.stopTimeoutMs ?? 10_000);
        // As Octavia: reloading a load balancer that does not run starts it.
        else if (action === "start" || !lb.running) details = await this.doStart(lb);
        else details = await this.doReload(lb, o.force ?? false);
      } finally {
        lb.busy--;
      }
      return { message: "OK", details, version: lb.meta.served?.version ?? lb.meta.version };
    });
  }

  /**
   * Under the lock. `how`: "start" asked by the controller; "restart" after
   * haproxy exited on its own; "resume" at agent start for one that should
   * run. Never starts a second master: whatever of this load balancer still
   * runs and is not the agent's is ended first, and a start that fails
   * half-way (its launcher killed or timed out after haproxy forked its
   * master) ends what it left.
   */
  private async doStart(lb: Lb, how: "start" | "restart" | "resume" = "start"): Promise<string> {
    const startedAt = performance.now();
    if (lb.master && (await stillRuns(lb.master))) {
      return `haproxy already running (serving config version ${lb.meta.served?.version ?? "unknown"})`;
    }
    setMaster(lb, undefined);
    await this.supervisor.endStrays(lb.id, await mastersOf(lb.paths.pidFile), "still running at a start");
    // The controller's start replaces any restart plan (and its backoff).
    if (how === "start") this.supervisor.backoff.reset(lb.id);
    try {
      const p = await startMaster(this.masterOptions(lb));
      lb.proc = p;
      setMaster(lb, await this.identifyStarted(lb, p));
      lb.meta.wanted = "running";
      if (how === "restart") lb.meta.restarts = (lb.meta.restarts ?? 0) + 1;
      this.supervisor.backoff.started(lb.id);
      await markGood(lb.paths, lb.meta);
      const what = how === "restart" ? `restarted after haproxy exited on its own (automatic restart ${lb.meta.restarts}): `
        : how === "resume" ? "started at agent start (wanted running, was not running): " : "";
      noteAction(lb.meta, "START", true, `${what}started config version ${lb.meta.version} (master ${p.master.pid})`, startedAt);
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
    // Outside the try: haproxy runs, and a metadata write that fails is no
    // failed start (nothing to retry); listeners hear of it either way.
    const notStored = await saveMeta(lb.paths, lb.meta).then(() => undefined, (w: Error) => w);
    this.emitEvent({ type: "started", lbId: lb.id });
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
    if ((await readPid(lb.paths.pidFile)) !== m.pid) await writeFileAtomic(lb.paths.pidFile, `${m.pid}\n`, 0o644, { createDir: false });
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

  private async doReload(lb: Lb, force: boolean): Promise<string> {
    const startedAt = performance.now();
    if (lb.error) throw new DomainError("unavailable", `cannot reload: ${lb.error}`, "", "MASTER_UNREACHABLE");
    const master = lb.master!;
    const opts = this.masterOptions(lb);
    const masterRuns = () => stillRuns(master);
    const [proc, text] = await Promise.all([
      showProc(opts.masterSocket).catch(async (e: Error) => ((await masterRuns()) ? Promise.reject(e) : undefined)),
      readConfig(lb.paths),
    ]);
    const r = proc ? await this.reloadRunning(lb, opts, proc, text, force, masterRuns) : undefined;
    if (!r || r.masterExited) {
      // Killed or crashed just before or during the reload: not the
      // config's fault, so no rollback. The supervisor starts it again
      // (with this config) when it is wanted running.
      const details = r?.details ?? "the haproxy master exited before the reload";
      await this.supervisor.noticeExit(lb, `haproxy master exited during a reload to config version ${lb.meta.version}`).catch((e: Error) =>
        this.logger.error({ lbId: lb.id, err: e.message }, "could not record the exit"));
      this.emitEvent({ type: "reload_failed", lbId: lb.id });
      throw new DomainError("unavailable", "Error reloading haproxy", `${details}; it is started again when wanted running`, "MASTER_EXITED");
    }
    if (r.ok) {
      noteAction(lb.meta, "RELOAD", true, `reloaded to config version ${lb.meta.version}`, startedAt);
      // Both at once: the metadata may name a last-good copy not yet
      // replaced only for an instant, and a rollback checks the md5 anyway.
      const stored = await Promise.all([markGood(lb.paths, lb.meta, text), saveMeta(lb.paths, lb.meta, { durable: false })])
        .then(() => undefined, (e: Error) => e);
      this.emitEvent({ type: "reloaded", lbId: lb.id });
      if (stored) {
        // haproxy did reload: that is the answer. What could not be written
        // (a full disk) is said, and the next agent start reconciles the
        // record from what runs (Supervisor.adopt).
        this.logger.error({ lbId: lb.id, err: stored.message }, "haproxy reloaded, but its state could not be recorded");
        return `haproxy reloaded with config version ${lb.meta.version}; warning: its state could not be recorded (${stored.message}); the agent reconciles it from what runs at its next start`;
      }
      return `haproxy reloaded with config version ${lb.meta.version}`;
    }
    // Roll the stored config back to the last one haproxy accepted, so the
    // next reload (or a restart) does not pick up the bad one.
    const rb = await rollBack(lb.paths, lb.meta);
    if (rb.kind === "missing") {
      noteAction(lb.meta, "RELOAD", false, `reload failed: ${r.details}; the last good config is missing or damaged, nothing rolled back`, startedAt);
      await saveMeta(lb.paths, lb.meta);
      this.emitEvent({ type: "reload_failed", lbId: lb.id });
      throw failed("Error reloading haproxy", lb.meta.lastAction ?? "", "RELOAD_FAILED");
    }
    const rolledBack = rb.kind === "done" ? `; ${rb.note}` : "";
    if (rb.kind === "done") lb.listeners = parseConfigFacts(rb.text).listeners;
    noteAction(lb.meta, "RELOAD", false, `reload failed: ${r.details}${rolledBack}`, startedAt);
    await saveMeta(lb.paths, lb.meta);
    this.emitEvent({ type: "reload_failed", lbId: lb.id });
    throw failed("Error reloading haproxy", `${r.details}${rolledBack}`, "RELOAD_FAILED");
  }

  /** Every master of this load balancer: the agent's and any stray (a leftover of an earlier race). */
  private async allMasters(lb: Lb | undefined, paths: LbPaths): Promise<MasterIdentity[]> {
    const found = await mastersOf(paths.pidFile);
    if (lb?.master && !found.some((m) => m.pid === lb.master!.pid)) found.push(lb.master);
    return found;
  }

  /** Headroom check, server states, then the reload itself, confirmed by `show proc`. */
  private async reloadRunning(lb: Lb, opts: MasterOptions, proc: ShowProc, text: string, force: boolean, masterRuns: () => Promise<boolean>): Promise<ReloadOutcome> {
    if (!force) await this.checkHeadroom(proc);
    await saveServerState(this.o.stateDir, lb.id, lb.paths, text, this.logger);
    lb.proc = proc;
    const r = await reloadMaster(opts, proc, masterRuns);
    lb.proc = r.after;
    return r;
  }

  private async doStop(lb: Lb, timeoutMs: number): Promise<string> {
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
    if (was || wasWanted || how !== "not-running") this.emitEvent({ type: "stopped", lbId: lb.id });
    return how === "not-running" ? "haproxy was not running" : `haproxy stopped (${how})`;
  }

  /** Stops every haproxy master of the load balancer and removes config, certificates, sockets and pid files. Idempotent. */
  async delete(lbId: string, stopTimeoutMs = 2000): Promise<{ existed: boolean }> {
    const id = checkLbId(lbId);
    return this.lock.run(id, async () => {
      const lb = this.lbs.get(id);
      const paths = this.paths(id);
      const was = lb?.running ?? false;
      // Also covers a folder never adopted (no config but a running master) and strays.
      try {
        await endMasters(await this.allMasters(lb, paths), stopTimeoutMs);
      } catch (e) {
        // Nothing removed: the config stays, and a retry may succeed. 503,
        // the one error the reference lists for this route.
        throw new DomainError("unavailable", "Could not stop haproxy; load balancer not deleted", (e as Error).message, "HAPROXY_STOP_FAILED");
      }
      this.supervisor.backoff.reset(id);
      if (lb) setMaster(lb, undefined);
      if (was) this.emitEvent({ type: "stopped", lbId: id });
      await rm(paths.dir, { recursive: true, force: true });
      await rm(paths.certDir, { recursive: true, force: true });
      // Octavia's server-state-file folder (<stateDir>/<lb_id>/), if a config used it.
      await rm(resolve(this.o.stateDir, basename(paths.dir)), { recursive: true, force: true });
      // Octavia's stats socket (`stats socket <base_path>/<lb_id>.sock` in the
      // configs it renders): haproxy leaves it behind. Only that exact name,
      // never a folder (rm without recursive).
      await rm(paths.octaviaStatsSocket, { force: true }).catch((e: Error) =>
        this.logger.warn({ lbId: id, err: e.message }, "could not remove the stats socket"));
      this.lbs.delete(id);
      if (lb) this.emitEvent({ type: "deleted", lbId: id });
      return { existed: lb !== undefined };
    });
  }

  /** Stops every haproxy (tests and deliberate decommissioning; an agent restart does not). */
  async stopAll(timeoutMs = 1000): Promise<void> {
    await Promise.all([...this.lbs.keys()].map((id) => this.lock.run(id, async () => {
      const lb = this.lbs.get(id);
      if (lb) await this.doStop(lb, timeoutMs);
    })));
  }
}
