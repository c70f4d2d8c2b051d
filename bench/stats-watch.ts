// Benchmark of WatchStats: 1, 100 and 1,000 concurrent subscribers at 1 s
// against one small load balancer and, separately, one generated load
// balancer with 1,000 listeners and 10,000 members. Reports the agent's CPU
// and RSS, haproxy polls per interval (target: 1 per load balancer) and
// delivery lag p50/p99 (collected_at -> received by the client).
//
// The agent runs in a child process (so its CPU and RSS are its own; with
// the node flags of the agent's bin, BENCH_PLAIN_NODE=1 for node's defaults) with a
// fixed catalog naming the haproxy processes this benchmark starts itself in
// master-worker mode; clients run here (a minimal Connect client that skips
// decoding the load balancers). Both share the machine's 2 cores with
// haproxy and with each other, so lag includes client-side scheduling.
// A fresh agent per scenario.
//
// Environment: BENCH_SUBSCRIBERS (default "1,100,1000"), BENCH_WINDOW_MS
// (6000), BENCH_LBS ("small", "big"), BENCH_CPU_PROF_DIR (agent
// --cpu-prof), BENCH_AGENT_HEAP_MB (agent --max-old-space-size),
// BENCH_DEBUG (print the agent's memory after a forced GC, and lag per tick), BENCH_AGENT_ARGS
// (more node flags for the agent, e.g. "--trace-gc"),
// BENCH_CLIENT_WINDOW_MB (client HTTP/2 stream window; default Node's 64 KB),
// BENCH_MODES ("snapshots", "changes"; default both: the big LB runs both),
// BENCH_HEAPSNAP (a folder: the agent writes a heap snapshot at the end of
// each measuring window), BENCH_WINDOW_PROF_DIR (a folder: the agent writes
// a CPU profile of the measuring window alone, without start-up and the
// first snapshots of the connection storm), BENCH_WINDOW_HEAP_DIR (a folder:
// the agent writes a sampling heap profile of what the window allocated,
// collected objects included).
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter, setMaxListeners } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../test/support/haproxy.js";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { WatchMode, WatchStatsRequestSchema } from "../src/gen/amphora/v1/stats_pb.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "../src/haproxy/catalog.js";
import { binNodeFlags } from "./agent-runtime.js";

const INTERVAL_MS = 1000;
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 6000);
const COUNTS = (process.env.BENCH_SUBSCRIBERS ?? "1,100,1000").split(",").map(Number);
const STREAMS_PER_SESSION = 100;

// ---------------------------------------------------------------- child: the agent

class FixedCatalog extends EventEmitter<{ event: [LoadBalancerEvent] }> implements LoadBalancerCatalog {
  constructor(private readonly refs: LoadBalancerRef[]) {
    super();
  }
  list() {
    return this.refs;
  }
  get(id: string) {
    return this.refs.find((r) => r.lbId === id);
  }
}

async function agentChild(arg: string): Promise<void> {
  const { startAgent } = await import("../src/agent/agent.js");
  const { silentLogger } = await import("../src/log.js");
  const o = JSON.parse(arg) as { stateDir: string; refs: LoadBalancerRef[] };
  const agent = await startAgent({ dev: true, stateDir: o.stateDir, listen: "127.0.0.1:0", logger: silentLogger, catalog: new FixedCatalog(o.refs) });
  const mon = agent.ctx.monitoring!;
  const profDir = process.env.BENCH_WINDOW_PROF_DIR;
  const heapDir = process.env.BENCH_WINDOW_HEAP_DIR;
  const inspector = profDir || heapDir ? new (await import("node:inspector")).Session() : undefined;
  inspector?.connect();
  const post = (method: string, params?: object) => new Promise<unknown>((r, j) => inspector!.post(method, params, (e, v) => (e ? j(e) : r(v))));
  process.on("message", async (m: { id: number }) => {
    // Asked first at the start of the window, then at its end.
    if (heapDir && m.id === 0) {
      await post("HeapProfiler.enable");
      await post("HeapProfiler.startSampling", { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
    if (heapDir && m.id === 1) {
      const { profile } = (await post("HeapProfiler.stopSampling")) as { profile: unknown };
      writeFileSync(join(heapDir, `window-${process.pid}.heapprofile`), JSON.stringify(profile));
    }
    if (profDir && m.id === 0) await post("Profiler.enable").then(() => post("Profiler.start"));
    if (profDir && m.id === 1) {
      const { profile } = (await post("Profiler.stop")) as { profile: unknown };
      writeFileSync(join(profDir!, `window-${process.pid}-${m.id}.cpuprofile`), JSON.stringify(profile));
    }
    // BENCH_HEAPSNAP=dir: a heap snapshot of the agent at the end of the window.
    const snapDir = process.env.BENCH_HEAPSNAP;
    if (snapDir && m.id % 2 === 1) (await import("node:v8")).writeHeapSnapshot(join(snapDir, `agent-${process.pid}-${m.id}.heapsnapshot`));
    process.send!({
      id: m.id,
      polls: mon.collector.polls,
      ticks: mon.hub.ticks,
      budgetPeakMb: Math.round(mon.streamBudget.peak / 1e5) / 10,
      gcd: ((g) => (g ? (g(), g(), true) : false))((globalThis as { gc?: () => void }).gc),
      memory: Object.fromEntries(Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 1e6)])),
      pollErrors: mon.collector.pollErrors,
      subscribers: mon.hub.subscriberCount,
      groups: mon.hub.groupCount,
    });
  });
  process.on("SIGTERM", () => void agent.stop(500).then(() => process.exit(0)));
  process.send!({ ready: true, url: agent.url, pki: agent.pki });
}

// ---------------------------------------------------------------- parent

interface Child {
  proc: ChildProcess;
  url: string;
  ca: string;
  cert: string;
  key: string;
  ask(): Promise<{ polls: number; ticks: number; pollErrors: number; subscribers: number; groups: number }>;
  stop(): Promise<void>;
}

async function startChild(stateDir: string, refs: LoadBalancerRef[]): Promise<Child> {
  const self = fileURLToPath(import.meta.url);
  const prof = process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  // E.g. 384 to see whether RSS is live memory or garbage a small amphora's GC would collect.
  if (process.env.BENCH_AGENT_HEAP_MB) prof.push(`--max-old-space-size=${process.env.BENCH_AGENT_HEAP_MB}`);
  if (process.env.BENCH_DEBUG) prof.push("--expose-gc");
  // E.g. "--trace-gc": more node flags for the agent alone.
  if (process.env.BENCH_AGENT_ARGS) prof.push(...process.env.BENCH_AGENT_ARGS.split(" ").filter(Boolean));
  // The installed agent's node flags (its bin's line) unless
  // BENCH_PLAIN_NODE=1: the young generation's size changes how often a
  // tick's garbage is collected.
  const flags = process.env.BENCH_PLAIN_NODE === "1" ? [] : binNodeFlags(fileURLToPath(new URL("..", import.meta.url)));
  const proc = spawn(process.execPath, [...flags, ...prof, "--import", "tsx", self, "--agent-child", JSON.stringify({ stateDir, refs })], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ready = await new Promise<{ url: string; pki: { ca: string; clientCert: string; clientKey: string } }>((resolve, reject) => {
    proc.once("exit", (c) => reject(new Error(`agent child exited with ${c}`)));
    proc.on("message", (m: { ready?: boolean }) => m.ready && resolve(m as never));
  });
  let next = 0;
  const waiting = new Map<number, (v: never) => void>();
  proc.on("message", (m: { id?: number }) => {
    if (m.id !== undefined) waiting.get(m.id)?.(m as never);
  });
  return {
    proc,
    url: ready.url,
    ca: readFileSync(ready.pki.ca, "utf8"),
    cert: readFileSync(ready.pki.clientCert, "utf8"),
    key: readFileSync(ready.pki.clientKey, "utf8"),
    ask() {
      const id = next++;
      return new Promise((r) => {
        waiting.set(id, r as never);
        proc.send({ id });
      });
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await Promise.race([gone, sleep(3000).then(() => proc.kill("SIGKILL"))]);
    },
  };
}

/** CPU seconds (user+system) and RSS bytes of a process. */
function procUsage(pid: number): { cpuS: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
  return { cpuS: ticks / 100, rss };
}

/** CPU seconds of an haproxy master and its workers. */
function haproxyCpu(pidFile: string): number {
  const master = Number(readFileSync(pidFile, "utf8").trim());
  let pids = [master];
  try {
    pids = pids.concat(readFileSync(`/proc/${master}/task/${master}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    // gone
  }
  return pids.reduce((n, p) => {
    try {
      return n + procUsage(p).cpuS;
    } catch {
      return n;
    }
  }, 0);
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Figures {
  lb: string;
  mode: string;
  subscribers: number;
  cpuPct: number;
  haproxyCpuPct: number;
  /** This process (the clients, and the light traffic) over the window. */
  clientCpuPct: number;
  rssMb: number;
  /** haproxy polls per tick of the (one) poll group: must be 1 for one LB. */
  pollsPerTick: number;
  /** Ticks per interval: below 1 when a tick overran the interval and the next was skipped. */
  ticksPerInterval: number;
  lagP50: number;
  lagP99: number;
  messages: number;
  missed: number;
  mbPerS: number;
}

/** Where client traffic goes: a TCP port or abstract unix socket names. */
type Targets = { port: number } | { abns: string[] };

function hit(t: Targets): Promise<void> {
  const where = "port" in t ? { host: "127.0.0.1", port: t.port } : { socketPath: `\0${t.abns[Math.floor(Math.random() * t.abns.length)]}` };
  return new Promise((resolve) => {
    const req = request({ ...where, path: "/", agent: false }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", () => resolve());
    req.end();
  });
}

/**
 * A minimal Connect streaming client (binary) that reads only the envelope
 * fields it needs and skips the load balancers without decoding them: the
 * clients share the 2 cores with the agent, and decoding 1,000 copies of a
 * 10,000-member snapshot per second here would measure this process, not
 * the agent.
 */
function watch(session: http2.ClientHttp2Session, req: Uint8Array, signal: AbortSignal,
  onMessage: (m: { collectedAtMs: number; missed: number; bytes: number; empty: boolean }) => void): Promise<void> {
  return new Promise((resolve) => {
    const body = Buffer.alloc(5 + req.length);
    body.writeUInt32BE(req.length, 1);
    body.set(req, 5);
    const stream = session.request({
      ":method": "POST", ":path": "/amphora.v1.StatsService/WatchStats",
      "content-type": "application/connect+proto", "connect-protocol-version": "1",
    });
    signal.addEventListener("abort", () => stream.close(http2.constants.NGHTTP2_CANCEL), { once: true });
    stream.end(body);
    let buf: Buffer = Buffer.alloc(0);
    stream.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (buf.length < 5 + len) break;
        const flags = buf[0]!;
        const msg = buf.subarray(5, 5 + len);
        buf = buf.subarray(5 + len);
        if (flags & 2) continue; // end-of-stream frame
        const r = new BinaryReader(msg);
        let collectedAtMs = 0;
        let missed = 0;
        // No load balancers and no removed ids: a keepalive (also sent right
        // after a big message), not an update; left out of lag and counts.
        let empty = true;
        while (r.pos < r.len) {
          const [no, wt] = r.tag();
          if (no === 1 || no === 2) empty = false;
          if (no === 3) {
            const t = new BinaryReader(r.bytes());
            let sec = 0;
            let nanos = 0;
            while (t.pos < t.len) {
              const [tn, tw] = t.tag();
              if (tn === 1) sec = Number(t.int64());
              else if (tn === 2) nanos = t.int32();
              else t.skip(tw);
            }
            collectedAtMs = sec * 1000 + nanos / 1e6;
          } else if (no === 5 && wt === WireType.Varint) missed = Number(r.uint64());
          else r.skip(wt);
        }
        onMessage({ collectedAtMs, missed, bytes: len, empty });
      }
    });
    stream.on("close", () => resolve());
    stream.on("error", () => resolve());
  });
}

async function scenario(child: Child, lbLabel: string, lbId: string, pidFile: string, n: number, mode: WatchMode, targets: Targets): Promise<Figures> {
  const sessions: http2.ClientHttp2Session[] = [];
  for (let i = 0; i < Math.ceil(n / STREAMS_PER_SESSION); i++) {
    // BENCH_CLIENT_WINDOW_MB: larger HTTP/2 flow-control windows than
    // Node's default 64 KB (a client of big snapshots might use them).
    const win = Number(process.env.BENCH_CLIENT_WINDOW_MB ?? 0) << 20;
    const s = http2.connect(child.url, { ca: child.ca, cert: child.cert, key: child.key, ...(win ? { settings: { initialWindowSize: win } } : {}) });
    if (win) s.on("connect", () => s.setLocalWindowSize(8 * win));
    s.on("error", () => {});
    sessions.push(s);
  }
  const req = toBinary(WatchStatsRequestSchema, create(WatchStatsRequestSchema, { intervalMs: INTERVAL_MS, mode, filter: { lbIds: [lbId] } }));
  const ac = new AbortController();
  setMaxListeners(0, ac.signal);
  let measuring = false;
  const lags: number[] = [];
  let messages = 0;
  let missed = 0;
  let firsts = 0;
  let bytes = 0;
  /** BENCH_DEBUG: lags per tick (by collected_at). */
  const perTick = new Map<number, number[]>();
  const loops = Array.from({ length: n }, (_, i) => {
    let first = true;
    return watch(sessions[Math.floor(i / STREAMS_PER_SESSION)]!, req, ac.signal, (m) => {
      if (first) {
        first = false;
        firsts++;
      }
      if (!measuring || m.empty) return;
      messages++;
      missed += m.missed;
      bytes += m.bytes;
      lags.push(Date.now() - m.collectedAtMs);
      if (process.env.BENCH_DEBUG) {
        const t = perTick.get(m.collectedAtMs) ?? perTick.set(m.collectedAtMs, []).get(m.collectedAtMs)!;
        t.push(lags[lags.length - 1]!);
      }
    });
  });
  const deadline = Date.now() + 120_000;
  while (firsts < n && Date.now() < deadline) await sleep(50);
  await sleep(INTERVAL_MS); // settle after the connection storm
  const pid = child.proc.pid!;
  const u0 = procUsage(pid);
  const h0 = haproxyCpu(pidFile);
  const s0 = await child.ask();
  const c0 = process.cpuUsage();
  measuring = true;
  const t0 = performance.now();
  // Light traffic (10 requests/s) so that counters, and CHANGES, move.
  while (performance.now() - t0 < WINDOW_MS) await Promise.all([hit(targets), sleep(100)]);
  measuring = false;
  const elapsed = performance.now() - t0;
  const c1 = process.cpuUsage(c0);
  const u1 = procUsage(pid);
  const h1 = haproxyCpu(pidFile);
  const s1 = await child.ask();
  if (process.env.BENCH_DEBUG) {
    console.error(JSON.stringify(s1));
    for (const [at, l] of perTick) {
      l.sort((a, b) => a - b);
      console.error(`tick ${new Date(at).toISOString()}: ${l.length} msgs, lag min ${l[0]} p50 ${pct(l, 50)} p90 ${pct(l, 90)} max ${l[l.length - 1]}`);
    }
  }
  ac.abort();
  await Promise.all(loops);
  for (const s of sessions) s.close();
  for (let i = 0; i < 100 && (await child.ask()).subscribers > 0; i++) await sleep(50);
  lags.sort((a, b) => a - b);
  return {
    lb: lbLabel,
    mode: mode === WatchMode.CHANGES ? "changes" : "snapshots",
    subscribers: n,
    cpuPct: Math.round(((u1.cpuS - u0.cpuS) / (elapsed / 1000)) * 1000) / 10,
    haproxyCpuPct: Math.round(((h1 - h0) / (elapsed / 1000)) * 1000) / 10,
    clientCpuPct: Math.round(((c1.user + c1.system) / 1e3 / elapsed) * 1000) / 10,
    rssMb: Math.round(u1.rss / 1e5) / 10,
    pollsPerTick: Math.round(((s1.polls - s0.polls) / Math.max(1, s1.ticks - s0.ticks)) * 100) / 100,
    ticksPerInterval: Math.round(((s1.ticks - s0.ticks) / (elapsed / INTERVAL_MS)) * 100) / 100,
    lagP50: pct(lags, 50),
    lagP99: pct(lags, 99),
    messages,
    missed,
    mbPerS: Math.round(bytes / (elapsed / 1000) / 1e5) / 10,
  };
}

async function startBackendServer(): Promise<Server> {
  const s = createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  return s;
}

async function startHaproxy(dir: string, name: string, cfg: string): Promise<LoadBalancerRef & { pidFile: string }> {
  const lbDir = join(dir, name);
  mkdirSync(lbDir, { recursive: true });
  const cfgPath = join(lbDir, "haproxy.cfg");
  writeFileSync(cfgPath, cfg);
  const pidFile = join(lbDir, "haproxy.pid");
  const sock = join(lbDir, "master.sock");
  const p = spawn("haproxy", ["-W", "-D", "-p", pidFile, "-S", `${sock},mode,600`, "-f", cfgPath], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr!.on("data", (c) => (err += c));
  const code = await new Promise<number | null>((r) => p.on("exit", r));
  if (code !== 0) throw new Error(`haproxy for ${name} failed: ${err}`);
  const listenerIds = [...cfg.matchAll(/^frontend (\S+)/gm)].map((m) => m[1]!);
  return { lbId: randomUUID(), masterSocket: sock, running: true, listenerIds, pidFile };
}

function generatedConfig(listeners: number, membersEach: number, backendPort: number, tag: string, tcpPort = 0): string {
  const out = ["global", "    maxconn 4000", "", "defaults", "    mode http", "    timeout connect 5s", "    timeout client 50s", "    timeout server 50s", ""];
  for (let i = 0; i < listeners; i++) {
    const l = randomUUID();
    const p = randomUUID();
    // Abstract sockets: 1,000 listeners without using 1,000 TCP ports.
    out.push(`frontend ${l}`, tcpPort ? `    bind 127.0.0.1:${tcpPort}` : `    bind abns@${tag}-${i}`, `    default_backend ${p}:${l}`, "");
    out.push(`backend ${p}:${l}`);
    for (let m = 0; m < membersEach; m++) out.push(`    server ${randomUUID()} 127.0.0.1:${backendPort} weight 1`);
    out.push("");
  }
  return out.join("\n");
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "amphora-bench-stats-"));
  const backend = await startBackendServer();
  const backendPort = (backend.address() as AddressInfo).port;
  const pidFiles: string[] = [];
  const children: Child[] = [];
  const results: Figures[] = [];
  try {
    const tag = `amb-${randomUUID().slice(0, 8)}`;
    const smallPort = await freePort();
    const small = await startHaproxy(dir, "small", generatedConfig(1, 2, backendPort, tag, smallPort));
    pidFiles.push(small.pidFile);
    const big = await startHaproxy(dir, "big", generatedConfig(1000, 10, backendPort, tag));
    pidFiles.push(big.pidFile);
    const sets: [string, LoadBalancerRef & { pidFile: string }, WatchMode[], Targets][] = [
      ["1 listener / 2 members", small, [WatchMode.SNAPSHOTS], { port: smallPort }],
      ["1,000 listeners / 10,000 members", big, [WatchMode.SNAPSHOTS, WatchMode.CHANGES], { abns: Array.from({ length: 1000 }, (_, i) => `${tag}-${i}`) }],
    ];
    // BENCH_LBS=small or big (default both).
    const only = process.env.BENCH_LBS?.split(",");
    for (const [label, ref, modes, targets] of sets) {
      if (only && !only.includes(ref === small ? "small" : "big")) continue;
      const modeNames = process.env.BENCH_MODES?.split(",");
      for (const mode of modes) {
        if (modeNames && !modeNames.includes(mode === WatchMode.CHANGES ? "changes" : "snapshots")) continue;
        for (const n of COUNTS) {
          // A fresh agent per scenario: RSS and CPU are that scenario's
          // alone; its catalog holds only this load balancer.
          const child = await startChild(join(dir, `agent-${children.length}`), [{ lbId: ref.lbId, masterSocket: ref.masterSocket, running: true, listenerIds: ref.listenerIds }]);
          children.push(child);
          const f = await scenario(child, label, ref.lbId, ref.pidFile, n, mode, targets);
          results.push(f);
          console.log(JSON.stringify(f));
          await child.stop();
        }
      }
    }
  } finally {
    for (const c of children) await c.stop();
    for (const f of pidFiles) {
      try {
        process.kill(Number(readFileSync(f, "utf8").trim()), "SIGTERM");
      } catch {
        // not running
      }
    }
    backend.closeAllConnections();
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("\nWatchStats at 1 s (agent in its own process; targets: 1,000 subscribers < 25% of one core, 1 poll per LB per interval, lag p99 < 100 ms)");
  console.log("load balancer                     | mode      | subs | agent CPU % | haproxy CPU % | RSS MB | polls/tick | ticks/interval | lag p50 ms | lag p99 ms | msgs | missed | MB/s out");
  for (const f of results) {
    console.log(
      `${f.lb.padEnd(33)} | ${f.mode.padEnd(9)} | ${String(f.subscribers).padStart(4)} | ${String(f.cpuPct).padStart(11)} | ${String(f.haproxyCpuPct).padStart(13)} | ${String(f.rssMb).padStart(6)} | ${String(f.pollsPerTick).padStart(10)} | ${String(f.ticksPerInterval).padStart(14)} | ${String(f.lagP50).padStart(10)} | ${String(f.lagP99).padStart(10)} | ${String(f.messages).padStart(4)} | ${String(f.missed).padStart(6)} | ${f.mbPerS}`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === "--agent-child") await agentChild(process.argv[3]!);
  else await main();
}
