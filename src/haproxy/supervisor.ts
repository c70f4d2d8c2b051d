// Supervision of the haproxy masters the agent runs, as an enabled systemd
// unit would do on a machine that has one: adoption of running masters at
// agent start, a watch that notices a master that died and strays that must
// not run, restarts with a backoff, and the resume of wanted-running load
// balancers at agent start. Masters are known by their identity (pid + start
// time + command line, masters.ts), never by the pid file alone.
//
// Every change to a load balancer happens under its lock (the manager's);
// the watch reads /proc once per pass outside it and takes the lock only for
// a load balancer whose master is gone or that has a stray.
import type { Logger } from "../log.js";
import type { LoadBalancerEvent } from "./catalog.js";
import type { KeyedLock } from "../system/keyed-lock.js";
import { lbPaths, lbRoot, type LbPaths } from "./layout.js";
import { stat } from "node:fs/promises";
import { markGood, noteAction, recoverStored, saveMeta } from "./config-store.js";
import type { LbMeta } from "./meta.js";
import type { ShowProc } from "./show-proc.js";
import { parseConfigFacts } from "./config-facts.js";
import { currentWorker, readPid, removeRunFiles, showProc } from "./master.js";
import { describeMaster, endMasters, mastersOf, mastersUnder, sameMaster, startedAtMs, stillRuns, type MasterIdentity } from "./masters.js";
import { RestartBackoff, type BackoffOptions } from "./restart-backoff.js";
import { seconds, setMaster, type Lb } from "./lb-state.js";
import { writeFileAtomic } from "../system/fs-atomic.js";

/** How long a stray master gets to finish in-flight connections before SIGTERM. */
const STRAY_GRACE_MS = 1000;
/**
 * Every pass looks at the masters the agent runs (one /proc read each); a
 * pass over all of /proc, which also finds strays, runs this often (or at
 * once when a known master is not as expected). An idle agent on a host of
 * ~300 processes spent 4 % of a core scanning /proc every second.
 */
const FULL_PASS_MS = 30_000;

export interface SupervisorHost {
  readonly stateDir: string;
  readonly certDir: string;
  readonly lbs: Map<string, Lb>;
  readonly lock: KeyedLock;
  readonly logger: Logger;
  emit(e: LoadBalancerEvent): void;
  /** The manager's start, called under the load balancer's lock. */
  start(lb: Lb, how: "restart" | "resume"): Promise<string>;
}

export interface SupervisorOptions {
  /**
   * How often to look for dead masters (default 1 s; 0 = never): a /proc
   * read per master the agent runs. Strays are looked for at every
   * `fullPassMs` (default 30 s, never more often than the watch) with a
   * pass over all of /proc.
   */
  watchIntervalMs?: number;
  fullPassMs?: number;
  restartBackoff?: BackoffOptions;
}

export class Supervisor {
  readonly backoff: RestartBackoff;
  /** Set by close(): no restart is started any more. */
  closed = false;
  private timer?: NodeJS.Timeout;
  /** Restarts under way, so close() can wait for them (none is left to finish unseen). */
  private readonly restarting = new Set<Promise<boolean>>();
  /** The watch pass in flight, if any. */
  private watching?: Promise<void>;
  /** performance.now() of the last pass over all of /proc. */
  private lastFullPass = -Infinity;
  /** Passes of the watch over all of /proc so far (tests, diagnosis). */
  fullPasses = 0;

  constructor(private readonly h: SupervisorHost, private readonly o: SupervisorOptions = {}) {
    this.backoff = new RestartBackoff(o.restartBackoff);
  }

  // ---- adoption --------------------------------------------------------------

  /**
   * At agent start: loads every load balancer folder and adopts its running
   * master; reports and ends strays of this state dir (a second master of a
   * load balancer, a master of a folder that is gone or holds no config).
   */
  async adoptAll(names: string[]): Promise<void> {
    const running = await mastersUnder(lbRoot(this.h.stateDir));
    for (const name of names) {
      if (!/^[0-9a-f-]{36}$/.test(name)) continue;
      const paths = lbPaths(this.h.stateDir, this.h.certDir, name);
      const masters = running.get(paths.pidFile) ?? [];
      running.delete(paths.pidFile);
      try {
        await this.adopt(name, paths, masters);
      } catch (e) {
        this.h.logger.error({ lbId: name, err: (e as Error).message }, "could not re-adopt load balancer");
      }
    }
    for (const [pidFile, masters] of running) {
      await this.endStrays(pidFile.split("/").at(-2) ?? pidFile, masters, "its load balancer folder is gone or was not adopted");
    }
  }

  /** Loads one load balancer folder; adopts its master if one runs, cleans stale run files otherwise. */
  private async adopt(lbId: string, paths: LbPaths, masters: MasterIdentity[]): Promise<void> {
    const stored = await recoverStored(lbId, paths, this.h.logger);
    if (!stored) {
      await this.endStrays(lbId, masters, "its folder holds no haproxy.cfg");
      return;
    }
    const { meta, text } = stored;
    const lb: Lb = { id: lbId, paths, meta, listeners: parseConfigFacts(text).listeners, running: false, busy: 0 };
    const ours = await this.pickOurs(paths, masters);
    await this.endStrays(lbId, masters.filter((m) => m !== ours), "a second master of this load balancer");
    if (ours) {
      setMaster(lb, ours);
      // The pid file may be missing or empty (a master re-executing for a
      // reload the previous agent process started), or name another process.
      if ((await readPid(paths.pidFile)) !== ours.pid) {
        this.h.logger.warn({ lbId, pid: ours.pid }, "pid file missing, empty or naming another process, but this load balancer's haproxy master runs; pid file written again");
        await writeFileAtomic(paths.pidFile, `${ours.pid}\n`, 0o644, { createDir: false });
      }
      let proc: ShowProc | undefined;
      // The master may be re-executing right now: give it a moment.
      for (let i = 0; i < 20 && !proc; i++) {
        proc = await showProc(paths.masterSocket, 1000).catch(() => undefined);
        if (!proc) await new Promise((r) => setTimeout(r, 50));
      }
      if (!proc) lb.error = `haproxy master ${ours.pid} runs but its CLI socket does not answer`;
      this.h.logger.info({ lbId, pid: ours.pid, controllable: !!proc }, "re-adopted running haproxy");
      // Only the agent starts it (and ends it when told to stop), so a
      // running one is wanted (also one whose start the agent did not see end).
      const reconciled = proc ? await this.reconcileServed(lbId, paths, meta, proc) : false;
      if (meta.wanted !== "running" || reconciled) {
        meta.wanted = "running";
        await saveMeta(paths, meta);
      }
    } else {
      await removeRunFiles(paths);
      // Metadata of an older agent: it served something, so it was running.
      const wanted = meta.wanted ?? (meta.served ? "running" : "stopped");
      if (meta.served || meta.wanted !== wanted) {
        meta.served = undefined;
        meta.wanted = wanted;
        await saveMeta(paths, meta);
      }
    }
    this.h.lbs.set(lbId, lb);
  }

  /**
   * The record from what runs: when the metadata does not name the stored
   * config as served (a reload whose record could not be written, a full
   * disk) but the current worker started after haproxy.cfg was last
   * written, that worker loaded it: it is served and the last good one.
   * Returns true when `meta` changed (the caller writes it).
   */
  private async reconcileServed(lbId: string, paths: LbPaths, meta: LbMeta, proc: ShowProc): Promise<boolean> {
    if (meta.served?.md5 === meta.md5 && meta.lastGood?.md5 === meta.md5) return false;
    const w = currentWorker(proc);
    const [workerStart, written] = await Promise.all([
      w ? startedAtMs(w.pid) : undefined,
      stat(paths.config).then((s) => s.mtimeMs, () => undefined),
    ]);
    if (workerStart === undefined || written === undefined || workerStart <= written) return false;
    const was = meta.served?.version;
    try {
      await markGood(paths, meta);
    } catch (e) {
      this.h.logger.error({ lbId, err: (e as Error).message }, "could not reconcile the served config");
      return false;
    }
    noteAction(meta, "RELOAD", true, `record reconciled at agent start: the running worker loaded config version ${meta.version} (the record said ${was ?? "none"})`, performance.now());
    this.h.logger.warn({ lbId, version: meta.version, recorded: was }, "served config reconciled from the running haproxy");
    return true;
  }

  /**
   * Which of a load balancer's running masters is the agent's: the one its
   * pid file names; else the one that answers on its master socket (`show
   * proc` names the master that owns it); else the only one.
   */
  private async pickOurs(paths: LbPaths, masters: MasterIdentity[]): Promise<MasterIdentity | undefined> {
    if (!masters.length) return undefined;
    const named = await readPid(paths.pidFile);
    const byFile = masters.find((m) => m.pid === named);
    if (byFile) return byFile;
    const owner = await showProc(paths.masterSocket, 1000).then((p) => p.master.pid, () => undefined);
    return masters.find((m) => m.pid === owner) ?? (masters.length === 1 ? masters[0] : undefined);
  }

  /** Ends masters of a load balancer that are not the agent's (logged: each is a defect or a leftover of one). */
  async endStrays(lbId: string, strays: MasterIdentity[], why: string): Promise<void> {
    if (!strays.length) return;
    this.h.logger.warn({ lbId, pids: strays.map(describeMaster) }, `stray haproxy master(s) of this load balancer ended: ${why}`);
    try {
      await endMasters(strays, STRAY_GRACE_MS);
    } catch (e) {
      this.h.logger.error({ lbId, err: (e as Error).message }, "could not end a stray haproxy master");
    }
  }

  // ---- watch -------------------------------------------------------------------

  startWatching(): void {
    const every = this.o.watchIntervalMs ?? 1000;
    if (every <= 0) return;
    // One pass at a time; close() waits for the one in flight, so no
    // metadata is written after it returns (a removed state dir stays removed).
    this.timer = setInterval(() => {
      this.watching ??= this.watch().finally(() => (this.watching = undefined));
    }, every);
    this.timer.unref();
  }

  /** True when every known master still runs and no load balancer the agent stopped has one it knows of. */
  private async knownMastersFine(): Promise<boolean> {
    for (const lb of this.h.lbs.values()) {
      if (lb.running && !(lb.master && (await stillRuns(lb.master)))) return false;
    }
    return true;
  }

  /** Notices masters that died without us (killed, crashed) and strays of this state dir. */
  private async watch(): Promise<void> {
    if (performance.now() - this.lastFullPass < (this.o.fullPassMs ?? FULL_PASS_MS) && (await this.knownMastersFine())) return;
    this.lastFullPass = performance.now();
    this.fullPasses++;
    let running: Map<string, MasterIdentity[]>;
    try {
      running = await mastersUnder(lbRoot(this.h.stateDir));
    } catch (e) {
      this.h.logger.error({ err: (e as Error).message }, "reading /proc failed");
      return;
    }
    // Load balancer id (the lock's key) -> pid file, of each one to look at under its lock.
    const todo = new Map<string, string>();
    for (const lb of this.h.lbs.values()) {
      const masters = running.get(lb.paths.pidFile) ?? [];
      running.delete(lb.paths.pidFile);
      const fine = lb.running ? masters.length === 1 && sameMaster(masters[0], lb.master) : masters.length === 0;
      if (!fine) todo.set(lb.id, lb.paths.pidFile);
    }
    // Masters of load balancers the agent does not know (deleted, never stored).
    for (const pidFile of running.keys()) todo.set(pidFile.split("/").at(-2) ?? pidFile, pidFile);
    for (const [id, pidFile] of todo) {
      if (this.closed) return;
      try {
        await this.h.lock.run(id, async () => {
          const lb = this.h.lbs.get(id);
          if (lb) await this.refresh(lb);
          else await this.endStrays(id, await mastersOf(pidFile), "its load balancer does not exist");
        });
      } catch (e) {
        // A timer callback: never let an error escape as an unhandled rejection.
        this.h.logger.error({ lbId: id, err: (e as Error).message }, "checking haproxy failed");
      }
    }
  }

  /**
   * Under the load balancer's lock: ends every master of it that is not the
   * agent's, and marks it stopped (planning a restart when wanted) if the
   * agent's master is gone.
   */
  async refresh(lb: Lb, o: { quick?: boolean } = {}): Promise<void> {
    // quick (before a reload): the agent's master still runs, so nothing is
    // started here; strays are the watch's to find (one /proc pass saved on
    // the hot path).
    if (o.quick && lb.master && (await stillRuns(lb.master))) return;
    const masters = await mastersOf(lb.paths.pidFile);
    const ours = lb.running ? masters.find((m) => sameMaster(m, lb.master)) : undefined;
    await this.endStrays(lb.id, masters.filter((m) => m !== ours), ours ? "a second master of this load balancer" : "not the master the agent started");
    if (!lb.running) return;
    if (ours) {
      if (lb.error) {
        // An adopted master whose CLI did not answer at start may answer now.
        const ok = await showProc(lb.paths.masterSocket, 1000).then(() => true, () => false);
        if (ok) lb.error = undefined;
      }
      return;
    }
    await this.noticeExit(lb, "haproxy exited without a stop request");
  }

  /** The agent's master of `lb` is gone: records it, plans a restart when wanted, tells listeners. */
  async noticeExit(lb: Lb, what: string): Promise<void> {
    setMaster(lb, undefined);
    lb.meta.served = undefined;
    lb.meta.lastExitAtMs = Date.now();
    const again = lb.meta.wanted === "running" && !this.closed;
    const delayMs = again ? this.backoff.afterExit(lb.id) : 0;
    const plan = again ? `; restarting it in ${seconds(delayMs)}` : "";
    noteAction(lb.meta, "EXITED", false, `${what}${plan}`, performance.now());
    this.h.logger.warn({ lbId: lb.id, restartInMs: again ? delayMs : undefined }, "haproxy master is gone");
    // Planned first: a metadata write that fails must not keep it down.
    if (again) this.planRestart(lb, delayMs);
    try {
      await removeRunFiles(lb.paths);
      await saveMeta(lb.paths, lb.meta);
    } finally {
      // Only now: a listener reading the state sees it stored. Also when
      // the write failed (a full disk): haproxy is gone either way.
      this.h.emit({ type: "stopped", lbId: lb.id, cause: "exited", restartInMs: again ? delayMs : undefined });
    }
  }

  // ---- restarts ------------------------------------------------------------------

  /** Plans a start of a wanted-running load balancer that does not run. */
  planRestart(lb: Lb, delayMs: number): void {
    if (this.closed) return;
    this.backoff.schedule(lb.id, delayMs, () => void this.restart(lb, "restart"));
  }

  /**
   * Starts a load balancer the controller wants running and that does not
   * run (it died: "restart"; the agent or the amphora restarted: "resume"),
   * with the stored config. A failure is tried again later (the manager's
   * start plans it). Never throws.
   */
  private restart(lb: Lb, why: "restart" | "resume"): Promise<boolean> {
    const p = this.restartNow(lb, why);
    this.restarting.add(p);
    void p.finally(() => this.restarting.delete(p));
    return p;
  }

  private async restartNow(lb: Lb, why: "restart" | "resume"): Promise<boolean> {
    try {
      return await this.h.lock.run(lb.id, async () => {
        // Stopped, deleted or already started meanwhile, or the agent stops.
        if (this.closed || this.h.lbs.get(lb.id) !== lb || lb.meta.wanted !== "running") return false;
        await this.refresh(lb);
        if (lb.running) return false;
        lb.busy++;
        try {
          await this.h.start(lb, why);
          this.h.logger.warn({ lbId: lb.id, version: lb.meta.version, restarts: lb.meta.restarts }, why === "restart" ? "haproxy exited on its own; started it again" : "haproxy was not running although it should; started it again");
          return true;
        } finally {
          lb.busy--;
        }
      });
    } catch (e) {
      this.h.logger.error({ lbId: lb.id, err: (e as Error).message, retryInMs: this.backoff.pending(lb.id) ? "planned" : undefined }, `could not ${why} haproxy`);
      return false;
    }
  }

  /**
   * At agent start, once the network namespace and its interfaces are back:
   * starts every load balancer the controller wants running whose haproxy
   * does not run. Never throws; failures are retried with the backoff.
   */
  async resume(): Promise<{ started: string[]; failed: string[] }> {
    const todo = [...this.h.lbs.values()].filter((lb) => lb.meta.wanted === "running" && !lb.running);
    const ok = await Promise.all(todo.map((lb) => this.restart(lb, "resume")));
    const r = { started: todo.filter((_, i) => ok[i]).map((lb) => lb.id), failed: todo.filter((lb, i) => !ok[i] && !lb.running).map((lb) => lb.id) };
    if (todo.length) this.h.logger.info(r, "load balancers resumed at agent start");
    return r;
  }

  /** Ends the watch and every planned restart; resolves once a restart under way has finished. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.backoff.resetAll();
    await Promise.allSettled([...this.restarting, this.watching]);
  }
}
