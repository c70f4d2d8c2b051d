// A busy controller fleet against one agent (issue 14): clients race
// uploads (valid and invalid), start, stop, reload and delete on a few load
// balancers while a killer sends `kill -9` to haproxy masters now and then
// (the agent's supervisor restarts the wanted-running ones). At intervals
// every client pauses, and after a quiet period the invariants are checked
// from /proc:
//   - at most one haproxy master per load balancer;
//   - every master is the one its load balancer's pid file names;
//   - no master whose load balancer folder is gone;
// and after the run deletes every load balancer, no master is left.
// Used by test/haproxy/lifecycle-stress.test.ts (short, bounded) and by the
// soak scenario soak/lifecycle.ts (long).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { startTestAgent } from "./agent.js";
import { freePort, killHaproxiesUnder, octaviaConfig } from "./haproxy.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { LoadBalancerAction, LoadBalancerService } from "../../src/gen/amphora/v1/load_balancer_pb.js";

export interface StressOptions {
  durationMs: number;
  /**
   * The clients go on past durationMs (up to twice it) until this many
   * operations were made: on a loaded machine a run must still mean something.
   */
  minOperations?: number;
  clients?: number;
  lbs?: number;
  /** Mean time between two kill -9 of a random master (0 = never). */
  killEveryMs?: number;
  /**
   * Mean time between two kill -9 of a haproxy launcher (`haproxy -W -D`)
   * caught after it forked its master and before it exited: a start that
   * dies half-way, as one the agent's timeout ends would (0 = never).
   */
  killStartingEveryMs?: number;
  /** Time between two invariant checks. */
  checkEveryMs?: number;
  /** Pause of every client before a check. */
  quietMs?: number;
  log?: (line: string) => void;
  /** On a violation, print the operations and kills around the stray master's start (diagnosis). */
  trace?: boolean;
}

export interface HaproxyProcess {
  pid: number;
  ppid: number;
  pidFile: string;
  starttime: string;
}

export interface StressResult {
  operations: number;
  /** "<op> <outcome>" → count; outcome = "ok" or the Connect code and reason. */
  outcomes: Map<string, number>;
  /** One line per failure answered as a 5xx by REST, with its message (deduplicated, counted). */
  serverErrors: Map<string, number>;
  violations: string[];
  checks: number;
  kills: number;
  /** Masters left after every load balancer was deleted. */
  leftAfterDeleteAll: HaproxyProcess[];
}

/** REST status of a Connect code as src/transport/rest maps it (500/503 are the 5xx). */
function restStatus(code: Code): number {
  switch (code) {
    case Code.InvalidArgument: return 400;
    case Code.NotFound: return 404;
    case Code.Aborted: case Code.FailedPrecondition: case Code.AlreadyExists: return 409;
    case Code.ResourceExhausted: case Code.Unavailable: case Code.DeadlineExceeded: return 503;
    default: return 500;
  }
}

/** Every haproxy process (master or worker) whose command line names a file under `dir`. */
export function haproxyProcessesUnder(dir: string): HaproxyProcess[] {
  const out: HaproxyProcess[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/comm`, "utf8").startsWith("haproxy")) continue;
      const args = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      const p = args.indexOf("-p");
      const pidFile = p >= 0 ? args[p + 1] ?? "" : "";
      if (!pidFile.startsWith(dir + "/")) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (f[0] === "Z" || f[0] === "X") continue;
      out.push({ pid: Number(name), ppid: Number(f[1]), pidFile, starttime: f[19] ?? "" });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** The masters among them: a haproxy whose parent is not a haproxy of the same load balancer. */
export function mastersUnder(dir: string): HaproxyProcess[] {
  const all = haproxyProcessesUnder(dir);
  return all.filter((p) => !all.some((q) => q.pid === p.ppid && q.pidFile === p.pidFile));
}

function readPidFile(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function folderExists(path: string): boolean {
  try {
    readdirSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The invariants as they hold now (one line per violation). */
export function invariantViolations(stateDir: string): string[] {
  const v: string[] = [];
  const byPidFile = new Map<string, HaproxyProcess[]>();
  for (const m of mastersUnder(stateDir)) byPidFile.set(m.pidFile, [...(byPidFile.get(m.pidFile) ?? []), m]);
  for (const [pidFile, masters] of byPidFile) {
    const lb = pidFile.slice(0, pidFile.lastIndexOf("/"));
    const lbId = lb.slice(lb.lastIndexOf("/") + 1);
    if (masters.length > 1) v.push(`${masters.length} masters of ${lbId}: ${masters.map((m) => m.pid).join(", ")}`);
    if (!folderExists(lb)) v.push(`master ${masters.map((m) => m.pid).join(", ")} of ${lbId} whose folder is gone`);
    const named = readPidFile(pidFile);
    for (const m of masters) if (m.pid !== named) v.push(`master ${m.pid} of ${lbId} but pid file names ${named}`);
  }
  return v;
}

/**
 * Checks the invariants a few times over ~2 s and reports only what holds
 * at every look: a master just being started by the supervisor (its pid
 * file not yet written) settles; a stray does not.
 */
async function settledViolations(stateDir: string): Promise<string[]> {
  let v = invariantViolations(stateDir);
  for (let i = 0; i < 4 && v.length; i++) {
    await sleep(500);
    const again = new Set(invariantViolations(stateDir));
    v = v.filter((x) => again.has(x));
  }
  return v;
}

function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(Math.random() * xs.length)]!;
}

export async function runLifecycleStress(o: StressOptions): Promise<StressResult> {
  const log = o.log ?? (() => {});
  const runDir = mkdtempSync(join(tmpdir(), "amt-stress-"));
  const agent = await startTestAgent({ restartBackoff: { initialMs: 200, maxMs: 2000 } });
  const r: StressResult = { operations: 0, outcomes: new Map(), serverErrors: new Map(), violations: [], checks: 0, kills: 0, leftAfterDeleteAll: [] };
  try {
    const client = agent.client(LoadBalancerService);
    const lbs = await Promise.all(Array.from({ length: o.lbs ?? 3 }, async () => ({ id: randomUUID(), port: await freePort() })));
    let round = 0;
    const valid = (lb: { id: string; port: number }) =>
      octaviaConfig({ lbId: lb.id, runDir, listeners: [{ id: lb.id, port: lb.port, members: [], returnBody: `r${round++}` }] }).text;
    const invalid = (lb: { id: string; port: number }) => valid(lb).replace("    maxconn 4096\n", "    maxconn 4096\n    no-such-keyword on\n");
    const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

    // What happened when, to explain a stray: operations and kills by time.
    const trace: { at: number; end: number; lb: string; what: string }[] = [];
    const btimeMs = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))![1]) * 1000;
    const explain = (v: string[]) => {
      if (!o.trace) return;
      for (const m of mastersUnder(agent.stateDir)) {
        if (!v.some((x) => x.includes(`master ${m.pid}`) || x.includes(`${m.pid},`) || x.includes(`, ${m.pid}`))) continue;
        const born = btimeMs + Number(m.starttime) * 10;
        log(`  master ${m.pid} (${m.pidFile}) started at ~${new Date(born).toISOString()}; around it:`);
        for (const t of trace) if (t.end >= born - 1500 && t.at <= born + 1500) log(`    ${new Date(t.at).toISOString()} .. +${t.end - t.at} ms ${t.lb.slice(0, 8)} ${t.what}`);
      }
    };
    let stopAt = Date.now() + o.durationMs;
    let paused = false;
    let inFlight = 0;
    const ops = ["upload", "upload", "upload-invalid", "start", "start", "stop", "reload", "reload", "reload", "delete"] as const;
    const one = async () => {
      const lb = pick(lbs);
      const op = pick(ops);
      inFlight++;
      const at = Date.now();
      let outcome = "ok";
      try {
        if (op === "upload") await client.putConfig({ amphoraId: agent.config.amphoraId, lbId: lb.id, config: valid(lb) });
        else if (op === "upload-invalid") {
          try {
            await client.putConfig({ amphoraId: agent.config.amphoraId, lbId: lb.id, config: invalid(lb) });
            count(r.outcomes, `${op} accepted (wrong)`);
            r.violations.push(`an invalid config was accepted for ${lb.id}`);
            return;
          } catch (e) {
            const c = ConnectError.from(e);
            count(r.outcomes, `${op} ${Code[c.code]}`);
            outcome = Code[c.code];
            if (c.code !== Code.InvalidArgument) count(r.serverErrors, `${op} ${restStatus(c.code)} ${Code[c.code]}: ${c.rawMessage}`);
            return;
          }
        } else if (op === "delete") await client.deleteLoadBalancer({ lbId: lb.id });
        else {
          const action = op === "start" ? LoadBalancerAction.START : op === "stop" ? LoadBalancerAction.STOP : LoadBalancerAction.RELOAD;
          await client.controlLoadBalancer({ lbId: lb.id, action, stopTimeoutMs: 1000 });
        }
        count(r.outcomes, `${op} ok`);
      } catch (e) {
        const c = ConnectError.from(e);
        const status = restStatus(c.code);
        count(r.outcomes, `${op} ${Code[c.code]}`);
        outcome = `${Code[c.code]} ${c.rawMessage} ${oneLine(detailsOf(c)).slice(0, 160)}`;
        if (status >= 500) count(r.serverErrors, `${op} ${status} ${Code[c.code]}: ${oneLine(c.rawMessage)} | ${oneLine(detailsOf(c))}`);
      } finally {
        r.operations++;
        inFlight--;
        if (o.trace) trace.push({ at, end: Date.now(), lb: lb.id, what: `${op}: ${outcome}` });
      }
    };
    const startedAt = Date.now();
    let pausedMs = 0;
    const goOn = () => Date.now() < stopAt || (r.operations < (o.minOperations ?? 0) && Date.now() < startedAt + 2 * o.durationMs + pausedMs);
    const clientLoop = async () => {
      while (goOn()) {
        if (paused) {
          await sleep(20);
          continue;
        }
        await one();
      }
    };
    const killer = async () => {
      if (!o.killEveryMs) return;
      while (Date.now() < stopAt) {
        await sleep(Math.random() * 2 * o.killEveryMs);
        if (paused || Date.now() >= stopAt) continue;
        const masters = mastersUnder(agent.stateDir);
        if (!masters.length) continue;
        const m = pick(masters);
        try {
          process.kill(m.pid, "SIGKILL");
          r.kills++;
          if (o.trace) trace.push({ at: Date.now(), end: Date.now(), lb: m.pidFile.split("/").at(-2) ?? "", what: `kill -9 ${m.pid} (parent ${m.ppid})` });
        } catch {
          // Gone already.
        }
      }
    };
    // Waits for a launcher (a haproxy whose parent is this process: the agent
    // runs in it) that has forked its master, and kills the launcher.
    const startKiller = async () => {
      if (!o.killStartingEveryMs) return;
      while (Date.now() < stopAt) {
        await sleep(Math.random() * 2 * o.killStartingEveryMs);
        const until = Date.now() + 3000;
        while (!paused && Date.now() < Math.min(until, stopAt)) {
          const all = haproxyProcessesUnder(agent.stateDir);
          const launcher = all.find((p) => p.ppid === process.pid && all.some((c) => c.ppid === p.pid));
          if (launcher) {
            try {
              process.kill(launcher.pid, "SIGKILL");
              r.kills++;
              if (o.trace) trace.push({ at: Date.now(), end: Date.now(), lb: launcher.pidFile.split("/").at(-2) ?? "", what: `kill -9 launcher ${launcher.pid}` });
            } catch {
              // Exited meanwhile.
            }
            break;
          }
          await sleep(1);
        }
      }
    };
    const checker = async () => {
      const every = o.checkEveryMs ?? 10_000;
      while (Date.now() + every < stopAt) {
        await sleep(every);
        paused = true;
        const pausedAt = Date.now();
        while (inFlight > 0) await sleep(10);
        await sleep(o.quietMs ?? 3000);
        const v = await settledViolations(agent.stateDir);
        r.checks++;
        explain(v);
        log(`check ${r.checks}: ${r.operations} operations, ${v.length} violation(s)${v.length ? `: ${v.join("; ")}` : ""}`);
        r.violations.push(...v);
        // The pause does not count against the run's time.
        stopAt += Date.now() - pausedAt;
        pausedMs += Date.now() - pausedAt;
        paused = false;
      }
    };
    await Promise.all([...Array.from({ length: o.clients ?? 8 }, clientLoop), killer(), startKiller(), checker()]);
    // A last check after a quiet period, then delete-all.
    await sleep(o.quietMs ?? 3000);
    const v = await settledViolations(agent.stateDir);
    r.checks++;
    r.violations.push(...v);
    log(`final check: ${r.operations} operations, ${v.length} violation(s)${v.length ? `: ${v.join("; ")}` : ""}`);
    for (const lb of lbs) {
      try {
        await client.deleteLoadBalancer({ lbId: lb.id });
      } catch (e) {
        r.violations.push(`delete of ${lb.id} at the end failed: ${ConnectError.from(e).message}`);
      }
    }
    // Give a restart that was already under way no chance to hide behind a delete.
    await sleep(o.quietMs ?? 3000);
    r.leftAfterDeleteAll = mastersUnder(agent.stateDir);
    if (r.leftAfterDeleteAll.length) {
      r.violations.push(`${r.leftAfterDeleteAll.length} master(s) still running after every load balancer was deleted: ${r.leftAfterDeleteAll.map((m) => `${m.pid} (${m.pidFile})`).join(", ")}`);
    }
    return r;
  } finally {
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
    rmSync(runDir, { recursive: true, force: true });
  }
}

function detailsOf(c: ConnectError): string {
  const i = c.findDetails(ErrorInfoSchema)[0];
  return `${i?.reason ?? ""} ${i?.details ?? ""}`.slice(0, 300);
}

/** One line, with what differs between two occurrences of one kind (pids, ports, temp folders) masked. */
function oneLine(s: string): string {
  return s.replace(/[^\x20-\x7e]+/g, " ").replace(/\/tmp\/[^\s)]+/g, "<path>").replace(/\b\d{2,}\b/g, "N").replace(/\s+/g, " ").trim();
}

/** Figures as lines for a report. */
export function describe(r: StressResult): string[] {
  const lines = [`operations ${r.operations}, kills ${r.kills}, checks ${r.checks}, violations ${r.violations.length}, masters left after delete-all ${r.leftAfterDeleteAll.length}`];
  for (const [k, n] of [...r.outcomes].sort()) lines.push(`  ${k}: ${n}`);
  if (r.serverErrors.size) lines.push("5xx:");
  for (const [k, n] of [...r.serverErrors].sort((a, b) => b[1] - a[1])) lines.push(`  ${n} × ${k}`);
  for (const v of r.violations) lines.push(`VIOLATION ${v}`);
  return lines;
}
