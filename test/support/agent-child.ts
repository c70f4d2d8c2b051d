// A real agent in its own Node process (for fuzzing and soak: a crash is a
// dead process, and its RSS and file descriptors are its own). The parent
// talks to it over IPC: "ready" with its URL and dev PKI, then "probe"
// answers with memory, fds and the connection guard's counters.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { AgentOptions } from "../../src/agent/agent.js";

export interface Probe {
  rssMb: number;
  heapMb: number;
  fds: number;
  guard: Record<string, number>;
  subscribers: number;
  /** Programs the agent is running right now (its child processes). */
  children: number;
}

export interface AgentProcess {
  proc: ChildProcess;
  pid: number;
  url: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
  /** Memory and fds; with gc, after a full garbage collection. */
  probe(gc?: boolean): Promise<Probe>;
  alive(): boolean;
  stop(): Promise<void>;
}

type ChildOptions = Pick<AgentOptions, "stateDir" | "overrides" | "logLevel"> & { dev: true };

export async function startAgentProcess(o: ChildOptions, cwd?: string): Promise<AgentProcess> {
  const self = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, ["--expose-gc", "--import", import.meta.resolve("tsx"), self, "--agent-child", JSON.stringify(o)], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    cwd,
  });
  const ready = await new Promise<{ url: string; port: number; pki: { ca: string; clientCert: string; clientKey: string } }>((resolve, reject) => {
    proc.once("exit", (c) => reject(new Error(`agent process exited with ${c}`)));
    proc.on("message", (m: { ready?: boolean }) => m.ready && resolve(m as never));
  });
  let next = 0;
  const waiting = new Map<number, (v: Probe) => void>();
  proc.on("message", (m: { id?: number; probe?: Probe }) => {
    if (m.id !== undefined && m.probe) waiting.get(m.id)?.(m.probe);
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    pid: proc.pid!,
    url: ready.url,
    port: ready.port,
    ca: readFileSync(ready.pki.ca, "utf8"),
    cert: readFileSync(ready.pki.clientCert, "utf8"),
    key: readFileSync(ready.pki.clientKey, "utf8"),
    alive,
    probe(gc = false) {
      const id = next++;
      return new Promise((resolve, reject) => {
        if (!alive()) return reject(new Error("the agent process is gone"));
        waiting.set(id, resolve);
        proc.send({ id, gc });
      });
    },
    async stop() {
      if (!alive()) return;
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 8000);
      await gone;
      clearTimeout(t);
    },
  };
}

function readChildren(): number {
  try {
    return readdirSync(`/proc/${process.pid}/task`).reduce((n, t) => n + readFileSync(`/proc/${process.pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).length, 0);
  } catch {
    return -1;
  }
}

async function child(o: ChildOptions): Promise<void> {
  const { startAgent } = await import("../../src/agent/agent.js");
  const agent = await startAgent({ ...o, listen: "127.0.0.1:0", logLevel: o.logLevel ?? "silent" });
  process.on("message", (m: { id: number; gc?: boolean }) => {
    if (m.gc) (globalThis as { gc?: () => void }).gc?.();
    const mem = process.memoryUsage();
    const probe: Probe = {
      rssMb: Math.round(mem.rss / 1e5) / 10,
      heapMb: Math.round(mem.heapUsed / 1e5) / 10,
      fds: readdirSync("/proc/self/fd").length,
      guard: agent.server.guard.stats(),
      subscribers: agent.ctx.monitoring.hub.subscriberCount,
      children: readChildren(),
    };
    process.send!({ id: m.id, probe });
  });
  const stop = () => void agent.stop(2000).then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("disconnect", stop);
  process.send!({ ready: true, url: agent.url, port: agent.port, pki: agent.pki });
}

if (process.argv[2] === "--agent-child") {
  child(JSON.parse(process.argv[3]!) as ChildOptions).catch((e: unknown) => {
    process.stderr.write(`agent process failed to start: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
