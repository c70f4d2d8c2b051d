// The load balancers this agent manages: orders, under each load
// balancer's lock, the config store (config-store.ts: versions, metadata,
// last good, rollback), the start/reload/stop of its one haproxy master
// (lb-lifecycle.ts; masters known by identity: masters.ts), supervision
// (supervisor.ts: adoption, watch, restarts) and status reads (status-reads.ts).
// Implements the LoadBalancerCatalog other modules read.
import { EventEmitter } from "node:events";
import { mkdir, readdir, rm } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { writeAtStart, type Conditions } from "../system/conditions.js";
import { DomainError, conflict, invalid, notFound } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "./catalog.js";
import { KeyedLock } from "../system/keyed-lock.js";
import { lbPaths, lbRoot, scratchDir, userGroupFile, checkLbId, type LbPaths } from "./layout.js";
import { md5, readConfig, storeConfig } from "./config-store.js";
import { parseConfigFacts } from "./config-facts.js";
import { peerName } from "./peer-name.js";
import { userGroupConfig } from "./user-group.js";
import { rewriteUpload } from "./upload-compat.js";
import { setImmediate as nextTurn } from "node:timers/promises";
import { checkHaproxyPolicy, type ConfigPolicy } from "./config-policy.js";
import { validateConfig } from "./validate.js";
import { parseConfigModel, whyValidationNeeded } from "./config-model.js";
import type { ApplyOptions } from "./runtime-apply.js";
import type { LastApply } from "./meta.js";
import { endMasters } from "./masters.js";
import type { BackoffOptions } from "./restart-backoff.js";
import { Supervisor } from "./supervisor.js";
import { LbLifecycle } from "./lb-lifecycle.js";
import { serverStateNote } from "./server-state.js";
import { lbStatus, listenerStatuses, type LbStatus, type ListenerStatus } from "./status-reads.js";
import { setMaster, type Lb } from "./lb-state.js";

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
   * (default 1 s; 0 = never). A /proc read per master the agent runs; the
   * time to notice adds to the restart delay. Strays are looked for less
   * often (fullPassMs).
   */
  watchIntervalMs?: number;
  fullPassMs?: number; // how often the watch looks over all of /proc for strays (default 30 s)
  /** Delay before restarting a haproxy that died: doubles in a crash loop (default 1 s to 30 s). */
  restartBackoff?: BackoffOptions;
  /** How long `haproxy -c` may take before the upload is refused as unavailable (default 30 s). */
  validateTimeoutMs?: number;
  /** Where a start write the storage refused (full disk) is reported; without it such a write fails the open. */
  conditions?: Conditions;
  /** The config policy uploads must pass before `haproxy -c` sees them (config-policy.ts); none when absent. */
  policy?: () => ConfigPolicy;
  /** Reload-free apply of server changes (issue 13, runtime-apply.ts); `enabled: false` always reloads (benchmarks compare both). */
  runtimeApply?: ApplyOptions & { enabled?: boolean };
}

/** Largest upload (and stored config) the config model checks instead of `haproxy -c`. */
// (Two parses of 256 KiB take ~20 ms; of 1 MiB, 70-150 ms on a loaded machine.)
const MODEL_CHECK_MAX_BYTES = 256 * 1024;

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
  private readonly lifecycle: LbLifecycle;
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
      start: (lb, how) => this.lifecycle.start(lb, how),
    }, { watchIntervalMs: o.watchIntervalMs, fullPassMs: o.fullPassMs, restartBackoff: o.restartBackoff });
    // `o` itself: setMemoryReserveBytes and setRuntimeApply change what the next reload reads.
    this.lifecycle = new LbLifecycle(o, this.supervisor, (e) => this.emitEvent(e), this.logger);
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
    // Unchanged at almost every start: rewritten only when it differs, so a start on a full disk needs no space.
    await writeAtStart(userGroupFile(this.o.stateDir), ug.text, 0o644, this.o.conditions, "haproxy's user/group file");
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

  /** Switches reload-free apply on or off, or changes its options (tests, benchmarks). */
  setRuntimeApply(o: ApplyOptions & { enabled?: boolean }): void {
    this.o.runtimeApply = o;
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

  /** How many times the watch has looked over all of /proc (for strays). */
  get watchFullPasses(): number {
    return this.supervisor.fullPasses;
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


  /**
   * Checks the config policy, validates with `haproxy -c` (or, for a
   * member change of the stored, already validated config, by the config
   * model) and stores the config atomically. Nothing changes on disk when
   * a check or storing fails. Does not reload.
   */
  async putConfig(amphoraId: string, lbId: string, upload: string, guard: Guard = {}): Promise<{ md5: string; version: number; changed: boolean; warnings: string }> {
    const id = checkLbId(lbId);
    const text = await rewriteUpload(upload); // what Octavia's agent changes in uploads (upload-compat.ts)
    return this.lock.run(id, async () => {
      const startedAt = performance.now();
      const existing = this.lbs.get(id);
      this.checkGuard(existing, guard);
      // The policy scan, md5 and writes of an 8 MiB upload each take a while: let other calls run first.
      if (text.length > 256 * 1024) await nextTurn();
      const sum = md5(text);
      if (existing && existing.meta.md5 === sum && existing.meta.amphoraId === amphoraId) {
        return { md5: sum, version: existing.meta.version, changed: false, warnings: "" };
      }
      const paths = this.paths(id);
      // Before haproxy -c: it would already run a lua-load of the upload.
      const policy = this.o.policy?.();
      if (policy) await checkHaproxyPolicy(text, id, policy);
      // After the policy, which every upload passes: a member change of the
      // stored (validated) config is checked here instead of by `haproxy -c`
      // (config-model.ts, whyValidationNeeded).
      const skip = existing !== undefined && await this.memberChangeOnly(existing, amphoraId, text);
      const { warnings: haproxyWarnings } = skip ? { warnings: "" } : await validateConfig(text, {
        haproxyCmd: this.o.settings().haproxyCmd,
        scratchDir: scratchDir(this.o.stateDir),
        userGroupFile: userGroupFile(this.o.stateDir),
        peer: peerName(amphoraId),
        displayName: `haproxy.cfg of load balancer ${id}`,
        ownDirs: [paths.certDir],
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

  /**
   * The upload differs from the stored config (validated when stored, for
   * this amphora) only in what the config model checks itself: servers
   * added, removed or changed within the runtime API's limits. Uploads
   * over MODEL_CHECK_MAX_BYTES always go to `haproxy -c` (the model parse
   * runs in one piece).
   */
  private async memberChangeOnly(lb: Lb, amphoraId: string, text: string): Promise<boolean> {
    if (this.o.runtimeApply?.enabled === false || lb.meta.amphoraId !== amphoraId || text.length > MODEL_CHECK_MAX_BYTES) return false;
    const known = await readConfig(lb.paths).catch(() => undefined);
    if (known === undefined || known.length > MODEL_CHECK_MAX_BYTES || md5(known) !== lb.meta.md5) return false;
    return whyValidationNeeded(parseConfigModel(known), parseConfigModel(text)) === undefined;
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

  /** `apply`: how a reload or start applied the stored config (absent when nothing was applied, e.g. a stop). */
  async control(lbId: string, action: string, o: Guard & { force?: boolean; stopTimeoutMs?: number } = {}): Promise<{ message: string; details: string; version: number; apply?: LastApply }> {
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
      const before = lb.meta.lastApply;
      lb.busy++;
      try {
        if (action === "stop") details = await this.lifecycle.stop(lb, o.stopTimeoutMs ?? this.o.stopTimeoutMs ?? 10_000);
        // As Octavia: reloading a load balancer that does not run starts it.
        else if (!lb.running) details = await this.lifecycle.start(lb);
        // A start of a running one applies a newer stored config as a reload would.
        else if (action === "start" && lb.meta.served?.md5 === lb.meta.md5) details = await this.lifecycle.start(lb);
        else details = await this.lifecycle.reload(lb, o.force ?? false);
      } finally {
        lb.busy--;
      }
      const apply = lb.meta.lastApply !== before ? lb.meta.lastApply : undefined;
      return { message: "OK", details, version: lb.meta.served?.version ?? lb.meta.version, apply };
    });
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
        await endMasters(await this.lifecycle.allMasters(lb, paths), stopTimeoutMs);
      } catch (e) {
        // Nothing removed: the config stays, and a retry may succeed. 503,
        // the one error the reference lists for this route.
        throw new DomainError("unavailable", "Could not stop haproxy; load balancer not deleted", (e as Error).message, "HAPROXY_STOP_FAILED");
      }
      this.supervisor.backoff.reset(id);
      if (lb) setMaster(lb, undefined);
      if (was) this.emitEvent({ type: "stopped", lbId: id, cause: "delete" });
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
      if (lb) await this.lifecycle.stop(lb, timeoutMs);
    })));
  }
}
