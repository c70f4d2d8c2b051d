// Listener statuses and load balancer statuses: reads of haproxy's master
// CLI outside the per-load-balancer lock (a poll never waits for a slow
// stop), with the last answer kept for when a reload is re-executing the
// master. Nothing here changes a load balancer.
import { masterCommand, retryWhileReexecuting } from "./master-cli.js";
import { currentWorker, showProc } from "./master.js";
import { readFrontendStatuses } from "./frontend-status.js";
import { SingleFlight } from "./single-flight.js";
import { stillRuns } from "./masters.js";
import type { ShowProc } from "./show-proc.js";
import type { ActionRecord, LastApply } from "./meta.js";
import type { Lb } from "./lb-state.js";

/** Concurrent listener-status requests share one `show stat` per haproxy (keyed by master socket). */
const frontendReads = new SingleFlight<Map<string, string>>();

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
  /** How the served config was last applied, and why. */
  lastApply?: LastApply;
}

/**
 * A poll may run while a reload is under way: the read retries, and when
 * the master still does not answer while an action is in flight the last
 * answer stands. ERROR is kept for what is really wrong: a running haproxy
 * that does not answer, or whose frontend is missing or stopped.
 */
export async function listenerStatuses(lbs: Iterable<Lb>): Promise<ListenerStatus[]> {
  const perLb = await Promise.all([...lbs].map(async (lb) => {
    let states: Map<string, string> | undefined;
    if (lb.running && !lb.error) {
      try {
        states = await frontendReads.run(lb.paths.masterSocket, () => readFrontendStatuses((cmd, ms) => masterCommand(lb.paths.masterSocket, cmd, ms)));
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

export async function lbStatus(lb: Lb, restartPending: boolean): Promise<LbStatus> {
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
    restartPending,
    lastApply: lb.meta.lastApply,
  };
  const master = lb.master;
  if (!lb.running || !master) return s;
  // By identity (pid and start time), not by the pid file a re-executing
  // master rewrites: a reload under way is no death.
  if (!(await stillRuns(master))) {
    // Died since the last check; the watcher or the next action records it.
    return { ...s, state: "STOPPED", servedVersion: 0, lastAction: "haproxy exited without a stop request" };
  }
  s.masterPid = master.pid;
  let p: ShowProc;
  try {
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
  const cur = currentWorker(p);
  s.masterPid = p.master.pid;
  s.reloads = p.master.reloads;
  s.failedReloads = p.master.failed;
  s.workers = p.workers.map((w) => ({ ...w, old: w !== cur }));
  const old = s.workers.filter((w) => w.old);
  s.lingeringWorkers = old.length;
  s.oldestLingeringSeconds = old.reduce((m, w) => Math.max(m, w.uptimeSeconds), 0);
  return s;
}
