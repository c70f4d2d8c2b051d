// Real haproxy load balancers for the stats, metrics and heartbeat tests,
// started by the test itself in master-worker mode (as the agent's haproxy
// module does), plus a small catalog object implementing the
// LoadBalancerCatalog interface the monitoring code reads. The catalog is
// the test's own stand-in for the agent's LoadBalancerManager: it lets a
// test create/reload/stop/delete load balancers and emit the events exactly
// when it wants; the haproxy processes and their stats are real.
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { runChecked } from "../../src/system/exec.js";
import { masterCommand } from "../../src/haproxy/master-cli.js";
import { parseShowInfo } from "../../src/stats/haproxy-stats.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "../../src/haproxy/catalog.js";
import { freePort, httpGet, killHaproxiesUnder, startBackend, octaviaConfig, type Backend, type GeneratedConfig } from "../support/haproxy.js";

/** The master refuses connections for a few ms while it (re-)executes. */
async function cliRetry(sock: string, cmd: string): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      return await masterCommand(sock, cmd);
    } catch (e) {
      if (i >= 50) throw e;
      await sleep(20);
    }
  }
}

export class TestCatalog extends EventEmitter<{ event: [LoadBalancerEvent] }> implements LoadBalancerCatalog {
  readonly refs = new Map<string, LoadBalancerRef>();
  list(): LoadBalancerRef[] {
    return [...this.refs.values()].map((r) => ({ ...r }));
  }
  get(lbId: string): LoadBalancerRef | undefined {
    const r = this.refs.get(lbId);
    return r ? { ...r } : undefined;
  }
  put(ref: LoadBalancerRef, event?: LoadBalancerEvent["type"]): void {
    this.refs.set(ref.lbId, ref);
    if (event) this.emit("event", { type: event, lbId: ref.lbId });
  }
  remove(lbId: string): void {
    this.refs.delete(lbId);
    this.emit("event", { type: "deleted", lbId });
  }
}

export interface TestLb {
  lbId: string;
  dir: string;
  sock: string;
  port: number;
  cfg: GeneratedConfig;
  listenerId: string;
  poolName: string;
  memberIds: string[];
  ref(): LoadBalancerRef;
  workerPid(): Promise<string>;
  /** Reload through the master CLI and wait for the new worker. */
  reload(): Promise<void>;
  stop(): Promise<void>;
  /** n GETs through the listener (fresh connection each). */
  traffic(n: number): Promise<number>;
  cli(cmd: string): Promise<string>;
}

export interface Env {
  dir: string;
  catalog: TestCatalog;
  backends: Backend[];
  lbs: TestLb[];
  /** sharedBackend: every member is the same backend (many members, one server process). */
  startLb(o?: { members?: number; lbId?: string; sharedBackend?: boolean }): Promise<TestLb>;
  cleanup(): Promise<void>;
}

export async function testEnv(): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), "amphora-stats-"));
  const env: Env = {
    dir,
    catalog: new TestCatalog(),
    backends: [],
    lbs: [],
    async startLb(o = {}) {
      const lbId = o.lbId ?? randomUUID();
      // Short: unix socket paths (plus haproxy's temp suffix) must fit in 108 bytes.
      const lbDir = join(dir, lbId.slice(0, 8));
      await runChecked("mkdir", ["-p", lbDir]);
      const members: Backend[] = [];
      for (let i = 0; i < (o.members ?? 2); i++) {
        if (o.sharedBackend && members.length) {
          members.push(members[0]!);
          continue;
        }
        const b = await startBackend(`m${i}`);
        env.backends.push(b);
        members.push(b);
      }
      const port = await freePort();
      const cfg = octaviaConfig({ lbId, runDir: lbDir, listeners: [{ port, members: members.map((b) => ({ port: b.port })) }] });
      const cfgPath = join(lbDir, "haproxy.cfg");
      writeFileSync(cfgPath, cfg.text);
      const sock = join(lbDir, "master.sock");
      const pidFile = join(lbDir, "haproxy.pid");
      await runChecked("haproxy", ["-W", "-D", "-p", pidFile, "-S", `${sock},mode,600`, "-f", cfgPath]);
      const l = cfg.listeners[0]!;
      let running = true;
      const lb: TestLb = {
        lbId, dir: lbDir, sock, port, cfg,
        listenerId: l.id,
        poolName: `${l.poolId}:${l.id}`,
        memberIds: l.members.map((m) => m.id!),
        ref: () => ({ lbId, masterSocket: sock, running, listenerIds: [l.id] }),
        cli: (cmd) => cliRetry(sock, cmd),
        async workerPid() {
          return parseShowInfo(await cliRetry(sock, "@1 show info")).get("Pid") ?? "";
        },
        async reload() {
          const before = await lb.workerPid();
          await cliRetry(sock, "reload");
          for (let i = 0; i < 300; i++) {
            await sleep(20);
            try {
              const p = await lb.workerPid();
              if (p && p !== before) return;
            } catch {
              // The master re-executes: its socket refuses for a few ms.
            }
          }
          throw new Error("haproxy reload did not produce a new worker");
        },
        async stop() {
          running = false;
          const pid = Number(readFileSync(pidFile, "utf8").trim());
          try {
            process.kill(pid, "SIGTERM");
          } catch {
            // gone already
          }
          for (let i = 0; i < 100; i++) {
            try {
              process.kill(pid, 0);
            } catch {
              return;
            }
            await sleep(10);
          }
        },
        async traffic(n) {
          let ok = 0;
          for (let i = 0; i < n; i++) if ((await httpGet(port)).status === 200) ok++;
          return ok;
        },
      };
      // Listeners answer a few ms after the launcher exits.
      for (let i = 0; i < 200; i++) {
        try {
          await httpGet(port, "/", "127.0.0.1", 500);
          break;
        } catch {
          await sleep(10);
        }
      }
      // That probe counted as traffic; tests want counters from zero.
      await cliRetry(sock, "@1 clear counters all");
      env.lbs.push(lb);
      return lb;
    },
    async cleanup() {
      await killHaproxiesUnder(dir);
      await Promise.all(env.backends.map((b) => b.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
