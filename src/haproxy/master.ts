// Drives one haproxy master-worker process: start (daemonized, so it
// outlives the agent), verified reload through the master CLI, graceful
// stop. Knows nothing of versions or RPC; the manager decides when.
import { readFile, unlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../system/exec.js";
import { failed, DomainError } from "../errors.js";
import type { Logger } from "../log.js";
import { masterCommand } from "./master-cli.js";
import { parseShowProc, type ShowProc } from "./show-proc.js";
import { processAlive, processArgs, processName } from "./proc-fs.js";
import { mastersOf } from "./masters.js";

export interface MasterOptions {
  haproxyCmd: string;
  /** Network namespace to start haproxy in ("" = the agent's). */
  netns: string;
  peer: string;
  config: string;
  userGroupFile: string;
  pidFile: string;
  masterSocket: string;
  logger?: Logger;
  /** How long to wait for a started/reloaded worker (default 15 s). */
  readyTimeoutMs?: number;
}

/** The current worker: the one started by the latest reload (fewest reloads). */
export function currentWorker(p: ShowProc) {
  let best: ShowProc["workers"][number] | undefined;
  for (const w of p.workers) if (!best || w.reloads < best.reloads) best = w;
  return best;
}

export async function showProc(socket: string, timeoutMs = 2000): Promise<ShowProc> {
  return parseShowProc(await masterCommand(socket, "show proc", timeoutMs));
}

export async function readPid(pidFile: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(pidFile, "utf8")).trim().split(/\s+/)[0]);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The master's pid if it runs (pid file names a live haproxy), else undefined. */
export async function runningMasterPid(pidFile: string): Promise<number | undefined> {
  const pid = await readPid(pidFile);
  if (pid === undefined) return undefined;
  // A recycled pid belonging to something else (or to the haproxy of
  // another load balancer) is not our master: it must name our pid file.
  const [alive, name, args] = await Promise.all([processAlive(pid), processName(pid), processArgs(pid)]);
  return alive && name.startsWith("haproxy") && args.includes(pidFile) ? pid : undefined;
}

export async function removeRunFiles(o: Pick<MasterOptions, "pidFile" | "masterSocket">): Promise<void> {
  await unlink(o.pidFile).catch(() => {});
  await unlink(o.masterSocket).catch(() => {});
}

/** Waits until the worker `pid` answers on the master CLI (it is in its event loop, serving). */
async function workerAnswers(socket: string, pid: number): Promise<boolean> {
  try {
    const info = await masterCommand(socket, `@!${pid} show info`, 2000);
    return new RegExp(`^Pid: ${pid}$`, "m").test(info);
  } catch {
    return false;
  }
}

function rewrite(out: string, o: MasterOptions): string {
  return out.split(o.config).join("haproxy.cfg").split(o.userGroupFile).join("user-group.cfg").trim();
}

/**
 * Starts haproxy daemonized in master-worker mode and returns once the
 * master CLI answers and a worker serves. Bind errors and the like come back
 * as a `failed` DomainError with haproxy's output.
 */
export async function startMaster(o: MasterOptions): Promise<ShowProc> {
  await removeRunFiles(o);
  const args = ["-W", "-D", "-p", o.pidFile, "-S", `${o.masterSocket},mode,600`, "-L", o.peer, "-f", o.config, "-f", o.userGroupFile];
  const r = await run(o.haproxyCmd, args, { netns: o.netns || undefined, timeoutMs: 30_000, logger: o.logger });
  if (r.exitCode !== 0) {
    await removeRunFiles(o);
    throw failed("Error starting haproxy", rewrite(r.stderr || r.stdout, o), "HAPROXY_START_FAILED");
  }
  const deadline = Date.now() + (o.readyTimeoutMs ?? 15_000);
  let last = "";
  while (Date.now() < deadline) {
    try {
      const p = await showProc(o.masterSocket);
      const w = currentWorker(p);
      if (w && (await workerAnswers(o.masterSocket, w.pid))) return p;
      last = "no worker serving yet";
    } catch (e) {
      last = (e as Error).message;
      // The launcher said yes but no master of this load balancer runs (in
      // /proc, not by the pid file, which the master may not have written
      // yet): no point waiting.
      if ((await mastersOf(o.pidFile)).length === 0) {
        await removeRunFiles(o);
        throw failed("Error starting haproxy", `haproxy exited right after start (${last})`, "HAPROXY_START_FAILED");
      }
    }
    await sleep(2);
  }
  throw failed("haproxy started but did not become ready", last, "HAPROXY_NOT_READY");
}

export interface ReloadOutcome {
  ok: boolean;
  /** The master itself was gone before the reload was confirmed (killed, crashed). */
  masterExited?: boolean;
  before: ShowProc;
  after: ShowProc;
  details: string;
}

/**
 * Asks the master to reload and verifies the outcome with `show proc`: the
 * master's reload counter must go up with no failure, and a new worker must
 * be listed. On 2.6 `reload` itself prints nothing, and a failed reload
 * keeps the old worker serving.
 */
export async function reloadMaster(o: MasterOptions, current?: ShowProc, masterRuns?: () => Promise<boolean>): Promise<ReloadOutcome> {
  const before = current ?? (await showProc(o.masterSocket));
  const oldPids = new Set(before.workers.map((w) => w.pid));
  try {
    await masterCommand(o.masterSocket, "reload", 5000);
  } catch (e) {
    // The master may drop the connection while it re-executes; the outcome
    // is read from show proc below either way.
    o.logger?.debug({ err: (e as Error).message }, "reload command connection ended early");
  }
  const deadline = Date.now() + (o.readyTimeoutMs ?? 15_000);
  let after: ShowProc | undefined;
  let last = "";
  while (Date.now() < deadline) {
    // The master refuses connections while it re-executes (~40-80 ms): a
    // short poll interval keeps the confirmation close to the real switch.
    await sleep(2);
    try {
      const p = await showProc(o.masterSocket);
      if (p.master.reloads <= before.master.reloads) continue;
      after = p;
      if (p.master.failed > 0) {
        return { ok: false, before, after: p, details: `haproxy master reports ${p.master.failed} failed reload(s); the previous worker keeps serving` };
      }
      // A new current worker, counter up, no failure: the reload is done.
      // (Measured: the new worker already serves when the master's CLI
      // comes back, 5-20 ms after the switch, so no further probe.)
      const w = currentWorker(p);
      if (w && !oldPids.has(w.pid)) return { ok: true, before, after: p, details: "" };
      last = "no new worker listed yet";
    } catch (e) {
      // Connection refused while the master re-executes, or for good when
      // it is gone: then waiting out the deadline would only hold the lock.
      last = (e as Error).message;
      if (masterRuns && !(await masterRuns())) {
        return { ok: false, masterExited: true, before, after: after ?? before, details: `the haproxy master exited during the reload (${last})` };
      }
    }
  }
  return {
    ok: false, before, after: after ?? before,
    details: `reload not confirmed within ${o.readyTimeoutMs ?? 15_000} ms: ${last}`,
  };
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await processAlive(pid))) return true;
    await sleep(10);
  }
  return !(await processAlive(pid));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

/**
 * Graceful stop: SIGUSR1 lets in-flight connections finish; after
 * `timeoutMs` SIGTERM, then SIGKILL. Removes pid file and socket.
 * Returns how it ended.
 */
export async function stopMaster(o: Pick<MasterOptions, "pidFile" | "masterSocket">, timeoutMs: number): Promise<"not-running" | "graceful" | "terminated" | "killed"> {
  const pid = await runningMasterPid(o.pidFile);
  if (pid === undefined) {
    await removeRunFiles(o);
    return "not-running";
  }
  let how: "graceful" | "terminated" | "killed" = "graceful";
  signal(pid, "SIGUSR1");
  if (!(await waitGone(pid, timeoutMs))) {
    how = "terminated";
    signal(pid, "SIGTERM");
    if (!(await waitGone(pid, 3000))) {
      how = "killed";
      signal(pid, "SIGKILL");
      if (!(await waitGone(pid, 3000))) throw new DomainError("failed", `haproxy master ${pid} survived SIGKILL`);
    }
  }
  await removeRunFiles(o);
  return how;
}
