// The load balancers this agent manages: validated config uploads with
// versions, start/stop/reload of one haproxy master per load balancer,
// deletion, listener statuses, re-adoption of running masters at agent
// start, and restarting a haproxy the controller wants running that died or
// did not survive a reboot. Implements the LoadBalancerCatalog other modules read.
import { EventEmitter } from "node:events";
import { access, mkdir, readdir, readFile, rm } from "node:fs/promises";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { writeAtStart, type Conditions } from "../system/conditions.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { DomainError, conflict, failed, invalid, notFound } from "../errors.js";
import { silentLogger, type Logger } from "../log.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "./catalog.js";
import { masterCommand, retryWhileReexecuting } from "./master-cli.js";
import { KeyedLock } from "./keyed-lock.js";
import { lbPaths, lbRoot, scratchDir, userGroupFile, checkLbId, type LbPaths } from "./layout.js";
import { HISTORY_LENGTH, md5, readMeta, recoverLostMeta, replaceFile, writeMeta, type ActionRecord, type LbMeta } from "./meta.js";
import { setImmediate as nextTurn } from "node:timers/promises";
import { parseConfigFacts, type ListenerFact } from "./config-facts.js";
import { peerName } from "./peer-name.js";
import { userGroupConfig } from "./user-group.js";
import { rewriteUpload } from "./upload-compat.js";
import { validateConfig } from "./validate.js";
import { checkHaproxyPolicy, type ConfigPolicy } from "./config-policy.js";
import {
  currentWorker, readPid, reloadMaster, removeRunFiles, runningMasterPid, showProc, startMaster, stopMaster, type MasterOptions,
} from "./master.js";
import { haproxyMasterNaming, memAvailableBytes, residentBytes } from "./proc-fs.js";
import { readFrontendStatuses } from "./frontend-status.js";
import type { ShowProc } from "./show-proc.js";
import { RestartBackoff, type BackoffOptions } from "./restart-backoff.js";

export type LbAction = "start" | "stop" | "reload";

/** Files the agent keeps in a load balancer's folder (see layout.ts); never a server-state-file. */
const RESERVED_IN_LB_DIR = new Set(["haproxy.cfg", "haproxy.cfg.last-good", "meta.json", "haproxy.pid", "master.sock"]);

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
   * How often to notice a haproxy that died on its own (default 1 s; 0 =
   * never). Three /proc reads per running load balancer; the time to notice
   * adds to the restart delay.
   */
  watchIntervalMs?: number;
  /** Delay before restarting a haproxy that died: doubles in a crash loop (default 1 s to 30 s). */
  restartBackoff?: BackoffOptions;
  /** How long `haproxy -c` may take before the upload is refused as unavailable (default 30 s). */
  validateTimeoutMs?: number;
  /** Where a start write the storage refused (full disk) is reported; without it such a write fails the open. */
  conditions?: Conditions;
  /** The config policy uploads must pass before `haproxy -c` sees them (config-policy.ts); none when absent. */
  policy?: () => ConfigPolicy;
}

export interface Guard {
  expectedVersion?: number;
  expectedMd5?: string;
}

export interface ListenerStatus {
  uuid: string;
  type: string;
  status: "ACTIVE" | "STOPPED" | "ERROR";
  lbId: string;
}

export interface WorkerInfo {
  pid: number;
  reloads: number;
  uptimeSeconds: number;
  old: boolean;
}

export interface LbStatus {
  lbId: string;
  state: "RUNNING" | "STOPPED" | "ERROR";
  configVersion: number;
  configMd5: string;
  servedVersion: number;
  masterPid: number;
  workers: WorkerInfo[];
  lingeringWorkers: number;
  oldestLingeringSeconds: number;
  reloads: number;
  failedReloads: number;
  lastAction: string;
  listenerIds: string[];
  /** Most recent first. */
  recentActions: ActionRecord[];
  /** "running" or "stopped": what the controller last asked for (restored after a crash or reboot). */
  wanted: "running" | "stopped";
  /** Automatic restarts after haproxy exited on its own (all time). */
  restarts: number;
  /** When haproxy last exited without a stop request (Unix ms; 0 = never). */
  lastExitAtMs: number;
  /** A restart is planned (haproxy is wanted running and is not). */
  restartPending: boolean;
}

interface Lb {
  id: string;
  paths: LbPaths;
  meta: LbMeta;
  listeners: ListenerFact[];
  running: boolean;
  /** Set when the master runs but cannot be controlled (CLI silent). */
  error?: string;
  /** Actions (start/reload/stop) under way: the master may be re-executing. */
  busy: number;
  /** Frontend states of the last successful read (listener statuses during a reload). */
  frontends?: Map<string, string>;
  /** The last `show proc` answer of status() (status during a reload). */
  proc?: ShowProc;
}

export class LoadBalancerManager extends EventEmitter<{ event: [LoadBalancerEvent] }> implements LoadBalancerCatalog {
  private readonly lbs = new Map<string, Lb>();
  /** Per load balancer; the certificate store shares it. */
  readonly lock = new KeyedLock();
  private readonly logger: Logger;
  private watchTimer?: NodeJS.Timeout;
  private readonly backoff: RestartBackoff;
  /** Set by close(): no restart is started any more. */
  private closed = false;
  /** Restarts under way, so close() can wait for them (none is left to finish unseen). */
  private readonly restarting = new Set<Promise<boolean>>();
  /** The watch pass in flight, if any. */
  private watching?: Promise<void>;
  /** Set when this machine lacks nobody/nogroup (see user-group.ts). */
  userGroupNote = "";

  private constructor(private readonly o: ManagerOptions) {
    super();
    this.logger = o.logger ?? silentLogger;
    this.backoff = new RestartBackoff(o.restartBackoff);
  }

  /** Prepares the state folder and re-adopts every load balancer found there. */
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
    for (const name of await readdir(lbRoot(this.o.stateDir))) {
      if (!/^[0-9a-f-]{36}$/.test(name)) continue;
      try {
        await this.adopt(name);
      } catch (e) {
        this.logger.error({ lbId: name, err: (e as Error).message }, "could not re-adopt load balancer");
      }
    }
    const every = this.o.watchIntervalMs ?? 1000;
    if (every > 0) {
      // One pass at a time; close() waits for the one in flight, so no
      // metadata is written after it returns (a removed state dir stays removed).
      this.watchTimer = setInterval(() => {
        this.watching ??= this.watch().finally(() => (this.watching = undefined));
      }, every);
      this.watchTimer.unref();
    }
  }

  /** Loads one load balancer folder; adopts its master if it still runs, cleans stale run files otherwise. */
  private async adopt(lbId: string): Promise<void> {
    const paths = this.paths(lbId);
    // Temp files of atomic writes interrupted by a crash.
    for (const f of await readdir(paths.dir)) if (/^\..*\.tmp$/.test(f)) await rm(`${paths.dir}/${f}`, { force: true });
    let text: string;
    try {
      text = await readFile(paths.config, "utf8");
    } catch {
      // No complete config was ever stored: nothing to adopt.
      this.logger.warn({ lbId }, "load balancer folder without haproxy.cfg ignored");
      return;
    }
    let meta = await readMeta(paths.meta);
    const sum = md5(text);
    if (!meta) {
      meta = await recoverLostMeta(lbId, paths, sum);
      // The wanted state went with it (a power cut after a reload's unsynced
      // metadata write can leave meta.json empty). A pid file still there
      // says haproxy ran: stop and delete remove it, a crash or a reboot
      // does not. (Its folder entry is durable: the fsynced metadata write of
      // the start that created it synced the folder.) Without this, a
      // load balancer the keepalived check requires would never come back.
      if (await exists(paths.pidFile)) meta.wanted = "running";
      this.logger.warn({ lbId, version: meta.version, wanted: meta.wanted ?? "stopped" }, "meta.json missing or unreadable; the stored config gets a version above any handed out");
      await writeMeta(paths.meta, meta);
    } else if (meta.md5 !== sum) {
      // A crash between storing the metadata and its config: the config file
      // is complete (atomic write), so it is the truth; give it a new version.
      meta = { ...meta, version: meta.version + 1, md5: sum, lastAction: "metadata recovered at agent start" };
      await writeMeta(paths.meta, meta);
    }
    const lb: Lb = { id: lbId, paths, meta, listeners: parseConfigFacts(text).listeners, running: false, busy: 0 };
    const pid = await this.findMaster(lbId, paths);
    if (pid !== undefined) {
      lb.running = true;
      let answered = false;
      // The master may be re-executing right now: give it a moment.
      for (let i = 0; i < 20 && !answered; i++) {
        try {
          await showProc(paths.masterSocket, 1000);
          answered = true;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      if (!answered) lb.error = `haproxy master ${pid} runs but its CLI socket does not answer`;
      this.logger.info({ lbId, pid, controllable: answered }, "re-adopted running haproxy");
      // Only the agent starts it (and ends it when told to stop), so a
      // running one is wanted (also one whose start the agent did not see end).
      if (meta.wanted !== "running") {
        meta.wanted = "running";
        await writeMeta(paths.meta, meta);
      }
    } else {
      await removeRunFiles(paths);
      // Metadata of an older agent: it served something, so it was running.
      const wanted = meta.wanted ?? (meta.served ? "running" : "stopped");
      if (meta.served || meta.wanted !== wanted) {
        meta.served = undefined;
        meta.wanted = wanted;
        await writeMeta(paths.meta, meta);
      }
    }
    this.lbs.set(lbId, lb);
  }

  /**
   * The pid of the load balancer's running master at agent start. A
   * re-executing master (a reload the previous agent process started just
   * before it ended) removes and rewrites its pid file: a missing or empty
   * pid file next to a master socket is not yet a death. The pid file is
   * read again for ~1 s; then /proc is searched for a live haproxy master
   * started with this pid file, and the pid file is written for it (the
   * watch, stop and delete find the master through it). Without this the
   * run files would be removed and resume() would start a second haproxy.
   */
  private async findMaster(lbId: string, paths: LbPaths): Promise<number | undefined> {
    let pid = await runningMasterPid(paths.pidFile);
    if (pid !== undefined || (await readPid(paths.pidFile)) !== undefined || !(await exists(paths.masterSocket))) return pid;
    for (let i = 0; i < 20 && pid === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
      pid = await runningMasterPid(paths.pidFile);
    }
    if (pid !== undefined) return pid;
    pid = await haproxyMasterNaming(paths.pidFile);
    if (pid === undefined) return undefined;
    this.logger.warn({ lbId, pid }, "pid file missing or empty, but a haproxy master started with it runs; pid file written again");
    await writeFileAtomic(paths.pidFile, `${pid}\n`, 0o644, { createDir: false });
    return pid;
  }

  /** Notices masters that died without us (killed, crashed). */
  private async watch(): Promise<void> {
    for (const lb of this.lbs.values()) {
      if (this.closed) return;
      if (!lb.running) continue;
      try {
        await this.lock.run(lb.id, async () => {
          if (this.lbs.get(lb.id) === lb) await this.refresh(lb);
        });
      } catch (e) {
        // A timer callback: never let an error escape as an unhandled rejection.
        this.logger.error({ lbId: lb.id, err: (e as Error).message }, "checking haproxy failed");
      }
    }
  }

  /** Under the load balancer's lock: marks it stopped if its master is gone. */
  private async refresh(lb: Lb): Promise<void> {
    if (!lb.running) return;
    if ((await runningMasterPid(lb.paths.pidFile)) !== undefined) {
      if (lb.error) {
        // An adopted master whose CLI did not answer at start may answer now.
        const ok = await showProc(lb.paths.masterSocket, 1000).then(() => true, () => false);
        if (ok) lb.error = undefined;
      }
      return;
    }
    lb.running = false;
    lb.error = undefined;
    lb.meta.served = undefined;
    lb.meta.lastExitAtMs = Date.now();
    const again = lb.meta.wanted === "running" && !this.closed;
    const delayMs = again ? this.backoff.afterExit(lb.id) : 0;
    const plan = again ? `; restarting it in ${seconds(delayMs)}` : "";
    this.note(lb, "EXITED", false, `haproxy exited without a stop request${plan}`, performance.now());
    this.logger.warn({ lbId: lb.id, restartInMs: again ? delayMs : undefined }, "haproxy master is gone");
    // Planned first: a metadata write that fails must not keep it down.
    if (again) this.planRestart(lb, delayMs);
    try {
      await removeRunFiles(lb.paths);
      await writeMeta(lb.paths.meta, lb.meta);
    } finally {
      // Only now: a listener reading the state sees it stored. Also when
      // the write failed (a full disk): haproxy is gone either way.
      this.emitEvent({ type: "stopped", lbId: lb.id, cause: "exited", restartInMs: again ? delayMs : undefined });
    }
  }

  /** Plans a start of a wanted-running load balancer that does not run. */
  private planRestart(lb: Lb, delayMs: number): void {
    if (this.closed) return;
    this.backoff.schedule(lb.id, delayMs, () => void this.restart(lb, "restart"));
  }

  /**
   * Starts a load balancer the controller wants running and that does not
   * run (it died: "restart"; the agent or the amphora restarted: "resume"),
   * with the stored config, as an enabled systemd unit would. A failure is
   * tried again later (doStart plans it). Never throws.
   */
  private restart(lb: Lb, why: "restart" | "resume"): Promise<boolean> {
    const p = this.restartNow(lb, why);
    this.restarting.add(p);
    void p.finally(() => this.restarting.delete(p));
    return p;
  }

  private async restartNow(lb: Lb, why: "restart" | "resume"): Promise<boolean> {
    try {
      return await this.lock.run(lb.id, async () => {
        // Stopped, deleted or already started meanwhile, or the agent stops.
        if (this.closed || this.lbs.get(lb.id) !== lb || lb.meta.wanted !== "running") return false;
        await this.refresh(lb);
        if (lb.running) return false;
        lb.busy++;
        try {
          await this.doStart(lb, why);
          this.logger.warn({ lbId: lb.id, version: lb.meta.version, restarts: lb.meta.restarts }, why === "restart" ? "haproxy exited on its own; started it again" : "haproxy was not running although it should; started it again");
          return true;
        } finally {
          lb.busy--;
        }
      });
    } catch (e) {
      this.logger.error({ lbId: lb.id, err: (e as Error).message, retryInMs: this.backoff.pending(lb.id) ? "planned" : undefined }, `could not ${why} haproxy`);
      return false;
    }
  }

  /**
   * At agent start, once the network namespace and its interfaces are back:
   * starts every load balancer the controller wants running whose haproxy
   * does not run (the amphora rebooted, or haproxy died while no agent ran).
   * Octavia's controller does not send start again. Never throws; failures
   * are retried with the backoff.
   */
  async resume(): Promise<{ started: string[]; failed: string[] }> {
    const todo = [...this.lbs.values()].filter((lb) => lb.meta.wanted === "running" && !lb.running);
    const ok = await Promise.all(todo.map((lb) => this.restart(lb, "resume")));
    const r = { started: todo.filter((_, i) => ok[i]).map((lb) => lb.id), failed: todo.filter((lb, i) => !ok[i] && !lb.running).map((lb) => lb.id) };
    if (todo.length) this.logger.info(r, "load balancers resumed at agent start");
    return r;
  }

  /** Changes the memory that must stay free after a reload (operators, tests). */
  setMemoryReserveBytes(bytes: number): void {
    this.o.memoryReserveBytes = bytes;
  }

  /**
   * Ends the watch and every planned restart (haproxy itself keeps
   * running); resolves once a restart already under way has finished.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.backoff.resetAll();
    await Promise.allSettled([...this.restarting, this.watching]);
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

  /** Records the outcome of an action in the metadata (the caller writes it). */
  private note(lb: Lb, action: ActionRecord["action"], ok: boolean, details: string, startedAt: number): void {
    lb.meta.lastAction = details;
    const rec: ActionRecord = {
      action, ok, details, configVersion: lb.meta.version,
      finishedAtMs: Date.now(), durationMs: Math.round(performance.now() - startedAt),
    };
    lb.meta.history = [rec, ...(lb.meta.history ?? [])].slice(0, HISTORY_LENGTH);
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

  // ---- LoadBalancerFacts (system details) ---------------------------------

  async runningCount(): Promise<number> {
    return [...this.lbs.values()].filter((lb) => lb.running).length;
  }

  async listenerIds(): Promise<string[]> {
    return [...this.lbs.values()].flatMap((lb) => lb.listeners.map((l) => l.id));
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
   * changes on disk when validation fails. Does not reload.
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
      const { warnings: haproxyWarnings } = await validateConfig(text, {
        haproxyCmd: this.o.settings().haproxyCmd,
        scratchDir: scratchDir(this.o.stateDir),
        userGroupFile: userGroupFile(this.o.stateDir),
        peer: peerName(amphoraId),
        displayName: `haproxy.cfg of load balancer ${id}`,
        ownDirs: [paths.certDir],
        logger: this.logger,
        timeoutMs: this.o.validateTimeoutMs,
      });
      const stateNote = this.serverStateNote(paths, parseConfigFacts(text).serverStateFile);
      const warnings = [haproxyWarnings, stateNote].filter(Boolean).join("\n");
      await mkdir(paths.dir, { recursive: true, mode: 0o700 });
      const meta: LbMeta = existing
        ? { ...existing.meta, amphoraId, version: existing.meta.version + 1, md5: sum }
        : { lbId: id, amphoraId, version: 1, md5: sum, updatedAt: "" };
      const rec: ActionRecord = {
        action: "UPLOAD", ok: true, configVersion: meta.version, details: `config version ${meta.version} stored (md5 ${sum})`,
        finishedAtMs: Date.now(), durationMs: Math.round(performance.now() - startedAt),
      };
      meta.lastAction = rec.details;
      meta.history = [rec, ...(meta.history ?? [])].slice(0, HISTORY_LENGTH);
      // Metadata first, then the config, one after the other (both fsynced):
      // - the metadata write fails: nothing changed anywhere;
      // - the config write fails: the previous metadata is put back, so
      //   disk and memory both still describe the previous config;
      // - a crash between the two: the md5 no longer matches, and the start
      //   gives the complete haproxy.cfg on disk a version above the one
      //   the metadata already holds, so versions never go backwards.
      // (The metadata's folder sync is left to the config write right after:
      // one sync makes both renames durable, and a crash before it is the
      // case above.)
      await writeMeta(paths.meta, meta, { syncDir: false }).catch((e: Error) => {
        throw failed("Could not store the configuration", `metadata not written: ${e.message}`, "STORE_FAILED");
      });
      try {
        await writeFileAtomic(paths.config, text, 0o600);
      } catch (e) {
        const undo = existing ? writeMeta(paths.meta, existing.meta) : rm(paths.meta, { force: true });
        await undo.catch((u: Error) => this.logger.error({ lbId: id, err: u.message }, "could not restore the metadata after a failed upload"));
        throw failed("Could not store the configuration", (e as Error).message, "STORE_FAILED");
      }
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
      const config = await readFile(lb.paths.config, "utf8");
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
      await this.refresh(lb);
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

  /** Records the stored config as the one haproxy runs (and may roll back to). */
  private async markGood(lb: Lb, text?: string): Promise<void> {
    const changed = lb.meta.lastGood?.md5 !== lb.meta.md5;
    // Metadata first (synchronously), so a concurrent writeMeta records it.
    lb.meta.lastGood = { version: lb.meta.version, md5: lb.meta.md5 };
    lb.meta.served = { version: lb.meta.version, md5: lb.meta.md5 };
    if (changed) {
      // Replaced whole (a rollback never restores half a file; it checks the md5 too).
      await replaceFile(lb.paths.lastGood, text ?? (await readFile(lb.paths.config, "utf8")));
    }
  }

  /**
   * `how`: "start" asked by the controller; "restart" after haproxy exited
   * on its own; "resume" at agent start for one that should run.
   */
  private async doStart(lb: Lb, how: "start" | "restart" | "resume" = "start"): Promise<string> {
    const startedAt = performance.now();
    if (lb.running && (await runningMasterPid(lb.paths.pidFile)) !== undefined) {
      return `haproxy already running (serving config version ${lb.meta.served?.version ?? "unknown"})`;
    }
    // The controller's start replaces any restart plan (and its backoff).
    if (how === "start") this.backoff.reset(lb.id);
    try {
      const p = await startMaster(this.masterOptions(lb));
      lb.proc = p;
      lb.running = true;
      lb.error = undefined;
      lb.meta.wanted = "running";
      if (how === "restart") lb.meta.restarts = (lb.meta.restarts ?? 0) + 1;
      this.backoff.started(lb.id);
      await this.markGood(lb);
      const what = how === "restart" ? `restarted after haproxy exited on its own (automatic restart ${lb.meta.restarts}): `
        : how === "resume" ? "started at agent start (wanted running, was not running): " : "";
      this.note(lb, "START", true, `${what}started config version ${lb.meta.version} (master ${p.master.pid})`, startedAt);
    } catch (e) {
      lb.running = (await runningMasterPid(lb.paths.pidFile)) !== undefined;
      const why = e instanceof DomainError && e.details ? `${e.message}: ${e.details}` : (e as Error).message;
      // Wanted running (a restart, or a start after one): try again later,
      // as an enabled systemd unit would, until the controller stops it.
      const retry = lb.meta.wanted === "running" && !lb.running && !this.closed;
      // One history entry per run of failures, so they do not push out the rest.
      const first = this.backoff.failures(lb.id) === 0;
      const delayMs = retry ? this.backoff.afterFailure(lb.id) : 0;
      const plan = retry ? `; trying again in ${seconds(delayMs)}${first ? " (and on, until stopped; further failures are only logged)" : ""}` : "";
      // Planned first: a metadata write that fails (a full disk) must not
      // end supervision, nor hide the start error from the caller.
      if (retry) this.planRestart(lb, delayMs);
      if (how === "start" || first) {
        this.note(lb, "START", false, `${how === "start" ? "" : `${how} `}start failed: ${why}${plan}`, startedAt);
        await writeMeta(lb.paths.meta, lb.meta).catch((w: Error) =>
          this.logger.error({ lbId: lb.id, err: w.message }, "could not store the metadata after a failed start"));
      }
      if (e instanceof DomainError) throw e;
      throw failed("Error starting haproxy", (e as Error).message, "HAPROXY_START_FAILED");
    }
    // Outside the try: haproxy runs, and a metadata write that fails is no
    // failed start (nothing to retry); listeners hear of it either way.
    const notStored = await writeMeta(lb.paths.meta, lb.meta).then(() => undefined, (w: Error) => w);
    this.emitEvent({ type: "started", lbId: lb.id, version: lb.meta.version, md5: lb.meta.md5, cause: how, restarts: lb.meta.restarts ?? 0 });
    if (notStored) {
      this.logger.error({ lbId: lb.id, err: notStored.message }, "haproxy started, but its metadata could not be stored");
      // The controller asked: it must know the wanted state may not survive a reboot.
      if (how === "start") throw failed("haproxy started, but its state could not be stored", notStored.message, "STORE_FAILED");
    }
    return `haproxy started with config version ${lb.meta.version}`;
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

  /**
   * Where the agent may write a config's `server-state-file`: Octavia's
   * location for it, or an absolute path directly inside this load
   * balancer's own folder, not one of the agent's files there. Anything else (the agent config, the PKI, another
   * load balancer's files, ...) is never written: the path comes from an
   * uploaded config.
   */
  private serverStateTarget(paths: LbPaths, file: string | undefined): { path?: string; why?: string } {
    if (!file) return {};
    if (!isAbsolute(file)) return { why: `server-state-file ${file} is not an absolute path` };
    const abs = resolve(file);
    const name = basename(abs);
    // Where Octavia's controller points it: <base_path>/<lb_id>/servers-state
    // (a folder of its own per load balancer, used for nothing else here).
    if (abs === resolve(this.o.stateDir, basename(paths.dir), "servers-state")) return { path: abs };
    if (dirname(abs) !== resolve(paths.dir)) {
      return { why: `server-state-file ${file} is outside this load balancer's folder ${paths.dir}` };
    }
    if (RESERVED_IN_LB_DIR.has(name) || name.startsWith(".")) {
      return { why: `server-state-file ${file} names a file the agent keeps in ${paths.dir}` };
    }
    return { path: abs };
  }

  /** Upload warning for a server-state-file the agent will not save to ("" when fine). */
  private serverStateNote(paths: LbPaths, file: string | undefined): string {
    const t = this.serverStateTarget(paths, file);
    return t.why ? `${t.why}; the agent will not save server states there before reloads (use ${paths.serverState})` : "";
  }

  /** Saves server states for `load-server-state-from-file`, only inside this load balancer's folder. */
  private async saveServerState(lb: Lb, text: string): Promise<void> {
    const t = this.serverStateTarget(lb.paths, parseConfigFacts(text).serverStateFile);
    if (t.why) this.logger.warn({ lbId: lb.id }, `${t.why}; server states not saved before reload`);
    const abs = t.path;
    if (!abs) return;
    try {
      const state = await masterCommand(lb.paths.masterSocket, "@1 show servers state", 5000);
      await writeFileAtomic(abs, state, 0o600);
    } catch (e) {
      this.logger.warn({ lbId: lb.id, err: (e as Error).message }, "could not save server state before reload");
    }
  }

  private async doReload(lb: Lb, force: boolean): Promise<string> {
    const startedAt = performance.now();
    if (lb.error) throw new DomainError("unavailable", `cannot reload: ${lb.error}`, "", "MASTER_UNREACHABLE");
    const opts = this.masterOptions(lb);
    const [proc, text] = await Promise.all([showProc(opts.masterSocket), readFile(lb.paths.config, "utf8")]);
    if (!force) await this.checkHeadroom(proc);
    await this.saveServerState(lb, text);
    lb.proc = proc;
    const r = await reloadMaster(opts, proc);
    lb.proc = r.after;
    if (r.ok) {
      const lastGood = this.markGood(lb, text);
      this.note(lb, "RELOAD", true, `reloaded to config version ${lb.meta.version}`, startedAt);
      // Both at once: the metadata may name a last-good copy not yet
      // replaced only for an instant, and a rollback checks the md5 anyway.
      await Promise.all([lastGood, writeMeta(lb.paths.meta, lb.meta, { durable: false })]);
      this.emitEvent({ type: "reloaded", lbId: lb.id, version: lb.meta.version, md5: lb.meta.md5 });
      return `haproxy reloaded with config version ${lb.meta.version}`;
    }
    // Roll the stored config back to the last one haproxy accepted, so the
    // next reload (or a restart) does not pick up the bad one.
    const failedVersion = lb.meta.version;
    let rolledBack = "";
    if (lb.meta.lastGood && lb.meta.lastGood.md5 !== lb.meta.md5) {
      const good = await readFile(lb.paths.lastGood, "utf8").catch(() => "");
      if (md5(good) !== lb.meta.lastGood.md5) {
        this.note(lb, "RELOAD", false, `reload failed: ${r.details}; the last good config is missing or damaged, nothing rolled back`, startedAt);
        await writeMeta(lb.paths.meta, lb.meta);
        this.emitEvent({ type: "reload_failed", lbId: lb.id, version: failedVersion, reason: r.details });
        throw failed("Error reloading haproxy", lb.meta.lastAction, "RELOAD_FAILED");
      }
      await writeFileAtomic(lb.paths.config, good, 0o600);
      const from = lb.meta.version;
      lb.meta.version += 1;
      lb.meta.md5 = md5(good);
      lb.listeners = parseConfigFacts(good).listeners;
      rolledBack = `; stored config rolled back from version ${from} to the last good one (version ${lb.meta.lastGood.version || "unknown"}, now stored as version ${lb.meta.version})`;
    }
    this.note(lb, "RELOAD", false, `reload failed: ${r.details}${rolledBack}`, startedAt);
    await writeMeta(lb.paths.meta, lb.meta);
    this.emitEvent({
      type: "reload_failed", lbId: lb.id, version: failedVersion, reason: r.details,
      rolledBack: rolledBack ? { restoredVersion: lb.meta.lastGood?.version ?? 0, storedVersion: lb.meta.version } : undefined,
    });
    throw failed("Error reloading haproxy", `${r.details}${rolledBack}`, "RELOAD_FAILED");
  }

  private async doStop(lb: Lb, timeoutMs: number): Promise<string> {
    const startedAt = performance.now();
    const how = await stopMaster(lb.paths, timeoutMs);
    const was = lb.running;
    lb.running = false;
    lb.error = undefined;
    lb.meta.served = undefined;
    // Stays stopped across crashes and reboots; a planned restart is off.
    lb.meta.wanted = "stopped";
    this.backoff.reset(lb.id);
    this.note(lb, "STOP", true, how === "not-running" ? "stop: was not running" : `stopped (${how})`, startedAt);
    await writeMeta(lb.paths.meta, lb.meta);
    if (was || how !== "not-running") this.emitEvent({ type: "stopped", lbId: lb.id, cause: "stop" });
    return how === "not-running" ? "haproxy was not running" : `haproxy stopped (${how})`;
  }

  /** Stops haproxy and removes config, certificates, sockets and pid files. Idempotent. */
  async delete(lbId: string, stopTimeoutMs = 2000): Promise<{ existed: boolean }> {
    const id = checkLbId(lbId);
    return this.lock.run(id, async () => {
      const lb = this.lbs.get(id);
      const paths = this.paths(id);
      // Also covers a folder we never adopted (e.g. no config but a running master).
      try {
        await stopMaster(paths, stopTimeoutMs);
      } catch (e) {
        // Nothing removed: the config stays, and a retry may succeed. 503,
        // the one error the reference lists for this route.
        const why = e instanceof DomainError && e.details ? `${e.message}: ${e.details}` : (e as Error).message;
        throw new DomainError("unavailable", "Could not stop haproxy; load balancer not deleted", why, "HAPROXY_STOP_FAILED");
      }
      this.backoff.reset(id);
      if (lb?.running) this.emitEvent({ type: "stopped", lbId: id, cause: "delete" });
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

  /**
   * Outside the per-load-balancer lock (a poll must not wait for a slow
   * stop), so a reload may be under way: the read retries, and when the
   * master still does not answer while an action is in flight the last
   * answer stands. ERROR is kept for what is really wrong: a running haproxy
   * that does not answer, or whose frontend is missing or stopped.
   */
  async listListeners(): Promise<ListenerStatus[]> {
    const perLb = await Promise.all([...this.lbs.values()].map(async (lb) => {
      let states: Map<string, string> | undefined;
      if (lb.running && !lb.error) {
        try {
          states = await readFrontendStatuses((cmd, ms) => masterCommand(lb.paths.masterSocket, cmd, ms));
          lb.frontends = states;
        } catch {
          if (lb.busy > 0) states = lb.frontends;
        }
      }
      return lb.listeners.map((l): ListenerStatus => {
        const st = states?.get(l.id);
        // FULL: at its maxconn, still accepting as connections end.
        const status = !lb.running ? "STOPPED" : st === "OPEN" || st === "FULL" ? "ACTIVE" : "ERROR";
        return { uuid: l.id, type: l.type, status, lbId: lb.id };
      });
    }));
    return perLb.flat();
  }

  async listStatus(): Promise<LbStatus[]> {
    return Promise.all([...this.lbs.keys()].map((id) => this.status(id)));
  }

  async status(lbId: string): Promise<LbStatus> {
    const lb = this.require(lbId);
    const s: LbStatus = {
      lbId: lb.id,
      state: lb.error ? "ERROR" : lb.running ? "RUNNING" : "STOPPED",
      configVersion: lb.meta.version,
      configMd5: lb.meta.md5,
      servedVersion: lb.meta.served?.version ?? 0,
      masterPid: 0,
      workers: [],
      lingeringWorkers: 0,
      oldestLingeringSeconds: 0,
      reloads: 0,
      failedReloads: 0,
      lastAction: lb.error ?? lb.meta.lastAction ?? "",
      listenerIds: lb.listeners.map((l) => l.id),
      recentActions: lb.meta.history ?? [],
      wanted: lb.meta.wanted ?? "stopped",
      restarts: lb.meta.restarts ?? 0,
      lastExitAtMs: lb.meta.lastExitAtMs ?? 0,
      restartPending: this.backoff.pending(lb.id),
    };
    if (!lb.running) return s;
    s.masterPid = (await runningMasterPid(lb.paths.pidFile)) ?? 0;
    // A re-executing master rewrites its pid file: during an action a
    // missing pid is not a death (the action itself sees one).
    if (!s.masterPid && lb.busy === 0) {
      // Died since the last check; the watcher or the next action records it.
      return { ...s, state: "STOPPED", servedVersion: 0, lastAction: "haproxy exited without a stop request" };
    }
    let p: ShowProc;
    try {
      // Outside the lock: a reload may be re-executing the master right now.
      p = await retryWhileReexecuting(() => showProc(lb.paths.masterSocket));
      lb.proc = p;
    } catch (e) {
      // Back-to-back reloads can keep the master re-executing longer than
      // the retries: while an action is under way that is no error; the
      // last answer stands.
      if (!(lb.busy > 0 && lb.proc)) {
        s.state = "ERROR";
        s.lastAction = `master CLI does not answer: ${(e as Error).message}`;
        return s;
      }
      p = lb.proc;
    }
    {
      const cur = currentWorker(p);
      s.masterPid = p.master.pid;
      s.reloads = p.master.reloads;
      s.failedReloads = p.master.failed;
      s.workers = p.workers.map((w) => ({ ...w, old: w !== cur }));
      const old = s.workers.filter((w) => w.old);
      s.lingeringWorkers = old.length;
      s.oldestLingeringSeconds = old.reduce((m, w) => Math.max(m, w.uptimeSeconds), 0);
    }
    return s;
  }
}

/** True when `path` exists (any kind of file, also an empty one). */
function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** "1 s", "0.25 s", "30 s". */
function seconds(ms: number): string {
  return `${Math.round(ms / 10) / 100} s`;
}
