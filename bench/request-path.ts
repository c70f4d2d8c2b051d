// Benchmark of the request path against its ceiling, measured in the same
// run: 8 concurrent mutual-TLS clients call the compiled agent (plain node,
// dist/, default log level: one line per call) and, alternately, a ceiling
// server with the agent's TLS options:
// - REST: a bare node:https server answering a fixed body (the agent's own
//   answer for that path, fetched once);
// - RPC: the project's generated services with empty implementations on a
//   connectNodeAdapter handler, on the same HTTP/2 server options.
// Paths: REST GET /1.0/listeners with 0, 1 and 50 load balancers (real
// haproxy, started through the agent), /1.0/info, /1.0/details;
// GetApiVersion over Connect binary, Connect JSON and gRPC;
// GetLoadBalancerStatus (Connect binary, one load balancer). Each path runs
// BENCH_ROUNDS rounds of (ceiling window, agent window); the rates are the
// medians of the windows, the ratio the median of the rounds' ratios.
// Also: start to "agent listening" and idle RSS of the compiled agent
// (median of 3 starts of bin/amphora-agent.js on an existing state dir, RSS
// 3 s after each start, and of the last start every 5 s up to 30 s idle).
// The ceilings run with the agent's node flags (those on its bin's line).
//
// Environment: BENCH_WINDOW_MS (1000), BENCH_ROUNDS (7), BENCH_ONLY (comma
// separated substrings of path names), BENCH_CPU_PROF_DIR (agent runs with
// --cpu-prof there), BENCH_CEILING_CPU_PROF_DIR (the same for the ceilings),
// BENCH_AGENT_NODE_FLAGS (more node flags for the agent
// under test), BENCH_CLIENTS (8), BENCH_LBS (50), BENCH_NO_STARTS (skip the
// start time and RSS part), BENCH_CEILING_PLAIN_NODE (ceilings on node's
// default flags instead of the agent's).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, openSync, closeSync } from "node:fs";
import https from "node:https";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { SystemService } from "../src/gen/amphora/v1/system_pb.js";
import { LoadBalancerAction, LoadBalancerService } from "../src/gen/amphora/v1/load_balancer_pb.js";
import { freePort, killHaproxiesUnder, octaviaConfig } from "../test/support/haproxy.js";
import { buildIfStale, compiledAgent } from "../bin/build-fresh.js";
import { binNodeFlags, rssMb } from "./agent-runtime.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const MANY_LBS = Number(process.env.BENCH_LBS ?? 50);
const ONLY = (process.env.BENCH_ONLY ?? "").split(",").filter(Boolean);

interface Pki {
  ca: string;
  cert: string;
  key: string;
}

// ---------------------------------------------------------------- parent

/** Starts the compiled agent; resolves when it logs "agent listening". */
function startAgent(stateDir: string, log: string, extra: string[] = []): Promise<{ proc: ChildProcess; url: string; startMs: number }> {
  const out = openSync(log, "w");
  const t0 = performance.now();
  // As installed: the bin, run by its shebang (node flags included), unless
  // node flags (a profile) are asked for.
  const args = ["--dev", "--state-dir", stateDir, "--listen", "127.0.0.1:0"];
  const [cmd, argv] = extra.length ? [process.execPath, [...binNodeFlags(ROOT), ...extra, compiledAgent(ROOT), ...args]] : [join(ROOT, "bin", "amphora-agent.js"), args];
  const proc = spawn(cmd, argv, { stdio: ["ignore", out, "pipe"], env: { ...process.env, AMPHORA_REQUIRE_DIST: "1" } });
  closeSync(out);
  return new Promise((resolve, reject) => {
    let err = "";
    proc.stderr!.on("data", (c) => (err += c));
    const poll = setInterval(() => {
      const m = /"url":"(https:[^"]+)".*"msg":"agent listening"/.exec(readFileSync(log, "utf8"));
      if (m) {
        clearInterval(poll);
        resolve({ proc, url: m[1]!, startMs: performance.now() - t0 });
      }
    }, 2);
    proc.once("exit", (c) => {
      clearInterval(poll);
      reject(new Error(`agent exited with ${c}: ${err}`));
    });
  });
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await Promise.race([gone, sleep(8000).then(() => proc.kill("SIGKILL"))]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One call by one client; resolves when the whole answer is in. */
type Call = () => Promise<void>;

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ ticks
}

/**
 * Calls per second of CLIENTS loops of `call` during one window; failures
 * counted apart; `cpu`: CPU seconds the server process `pid` used in the
 * window and `calls` the calls it answered then (CPU per call holds still
 * on a loaded machine where rates swing).
 */
async function windowRate(calls: Call[], pid?: number): Promise<{ rate: number; failed: number; firstError?: string; cpu: number; calls: number }> {
  let running = true;
  let done = 0;
  let failed = 0;
  let firstError: string | undefined;
  const loops = calls.map(async (call) => {
    while (running) {
      try {
        await call();
        done++;
      } catch (e) {
        failed++;
        firstError ??= (e as Error).message;
      }
    }
  });
  // A short warm-up outside the count (connections, JIT of this path).
  await sleep(Math.min(300, WINDOW_MS / 4));
  const d0 = done;
  const c0 = pid ? cpuSeconds(pid) : 0;
  const t0 = performance.now();
  await sleep(WINDOW_MS);
  const n = done - d0;
  const s = (performance.now() - t0) / 1000;
  const cpu = pid ? cpuSeconds(pid) - c0 : 0;
  running = false;
  await Promise.all(loops);
  return { rate: n / s, failed, firstError, cpu, calls: n };
}

function restCalls(port: number, path: string, pki: Pki): { calls: Call[]; close(): void } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: CLIENTS, ca: pki.ca, cert: pki.cert, key: pki.key });
  const one: Call = () =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port, path, agent, servername: "localhost" }, (res) => {
        res.resume();
        res.once("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.once("error", reject);
      req.end();
    });
  return { calls: Array.from({ length: CLIENTS }, () => one), close: () => agent.destroy() };
}

type Proto = "connect-binary" | "connect-json" | "grpc";

function rpcClients(url: string, pki: Pki, proto: Proto) {
  const nodeOptions = { ca: pki.ca, cert: pki.cert, key: pki.key, servername: "localhost" };
  // One transport (one HTTP/2 session) per client, as 8 controllers would have.
  return Array.from({ length: CLIENTS }, () => {
    const t = proto === "grpc"
      ? createGrpcTransport({ baseUrl: url, nodeOptions })
      : createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: proto === "connect-binary", nodeOptions });
    return { system: createClient(SystemService, t), lb: createClient(LoadBalancerService, t) };
  });
}

interface Row {
  name: string;
  ceiling: number;
  agent: number;
  ratio: number;
  /** Server CPU per call, µs: the ceiling's and the agent's (all windows together). */
  cpuUs: [number, number];
  target?: number;
  failed: number;
  note?: string;
}

export async function main(): Promise<void> {
  if (!buildIfStale(ROOT)) throw new Error("npm run build failed");
  const dir = mkdtempSync(join(tmpdir(), "amphora-bench-reqpath-"));
  const stateDir = join(dir, "state");
  const procs: ChildProcess[] = [];
  const lbIds: string[] = [];
  const rows: Row[] = [];
  const load0 = loadavg();
  try {
    // ---- start time and idle RSS of the compiled agent (first start makes the PKI)
    const first = await startAgent(stateDir, join(dir, "start-0.log"));
    await stopProc(first.proc);
    const starts: number[] = [];
    const rss: number[] = [];
    // The last start also stays up, idle, for SETTLED_S: V8's memory reducer
    // gives back the start-up garbage and young generation ~20 s after start.
    const settled: number[] = [];
    const SETTLED_S = 30;
    for (let i = 1; i <= (process.env.BENCH_NO_STARTS ? 0 : 3); i++) {
      const a = await startAgent(stateDir, join(dir, `start-${i}.log`));
      starts.push(a.startMs);
      await sleep(3000);
      rss.push(rssMb(a.proc.pid!));
      if (i === 3) {
        for (let t = 5; t <= SETTLED_S; t += 5) {
          await sleep(t === 5 ? 2000 : 5000);
          settled.push(rssMb(a.proc.pid!));
        }
      }
      await stopProc(a.proc);
    }

    // ---- the agent under test and the ceilings
    const prof = process.env.BENCH_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
    // BENCH_AGENT_NODE_FLAGS: node flags for the agent under test (e.g. another --max-semi-space-size).
    prof.push(...(process.env.BENCH_AGENT_NODE_FLAGS ?? "").split(" ").filter(Boolean));
    const agent = await startAgent(stateDir, join(dir, "agent.log"), prof);
    procs.push(agent.proc);
    const pkiDir = join(stateDir, "pki");
    const pki: Pki = {
      ca: readFileSync(join(pkiDir, "ca.pem"), "utf8"),
      cert: readFileSync(join(pkiDir, "client.pem"), "utf8"),
      key: readFileSync(join(pkiDir, "client-key.pem"), "utf8"),
    };
    const ceilingProf = process.env.BENCH_CEILING_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CEILING_CPU_PROF_DIR}`] : [];
    // The ceilings run on the same runtime as the agent (its bin's node
    // flags, e.g. the young-generation size chosen for its memory, and
    // BENCH_AGENT_NODE_FLAGS), so a ratio measures the agent's request path,
    // not a V8 setting; BENCH_CEILING_PLAIN_NODE=1 runs them on node's defaults.
    const ceilingFlags = process.env.BENCH_CEILING_PLAIN_NODE === "1" ? [] : [...binNodeFlags(ROOT), ...(process.env.BENCH_AGENT_NODE_FLAGS ?? "").split(" ").filter(Boolean)];
    const ceilingProc = spawn(process.execPath, [...ceilingFlags, ...ceilingProf, join(ROOT, "bench", "request-path-ceiling.mjs"),
      JSON.stringify({ ca: join(pkiDir, "ca.pem"), bundle: join(pkiDir, "server-bundle.pem") })], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    procs.push(ceilingProc);
    const ports = await new Promise<{ restPort: number; rpcPort: number }>((resolve, reject) => {
      ceilingProc.once("exit", (c) => reject(new Error(`ceiling exited with ${c}`)));
      ceilingProc.on("message", (m: { restPort?: number }) => m.restPort && resolve(m as never));
    });
    const agentPort = Number(new URL(agent.url).port);
    const setCeilingBody = (path: string, body: string) =>
      new Promise<void>((resolve) => {
        const on = (m: { set?: string }) => {
          if (m.set === path) {
            ceilingProc.off("message", on);
            resolve();
          }
        };
        ceilingProc.on("message", on);
        ceilingProc.send({ path, body });
      });

    const wanted = (name: string) => !ONLY.length || ONLY.some((s) => name.includes(s));
    const measure = async (name: string, ceilingCalls: Call[], agentCalls: Call[], target?: number, note?: string) => {
      if (!wanted(name)) return;
      const c: number[] = [];
      const a: number[] = [];
      const cpu = { c: 0, cn: 0, a: 0, an: 0 };
      const ceiling = async () => {
        const w = await windowRate(ceilingCalls, ceilingProc.pid);
        cpu.c += w.cpu;
        cpu.cn += w.calls;
        return w;
      };
      const agentWindow = async () => {
        const w = await windowRate(agentCalls, agent.proc.pid);
        cpu.a += w.cpu;
        cpu.an += w.calls;
        return w;
      };
      let failed = 0;
      let err: string | undefined;
      // Warm both (connections, JIT), then alternate.
      await windowRate(ceilingCalls);
      await windowRate(agentCalls);
      for (let r = 0; r < ROUNDS; r++) {
        // Which goes first alternates, so neither always follows the other.
        let wc: Awaited<ReturnType<typeof windowRate>>;
        let wa: typeof wc;
        if (r % 2 === 0) {
          wc = await ceiling();
          wa = await agentWindow();
        } else {
          wa = await agentWindow();
          wc = await ceiling();
        }
        c.push(wc.rate);
        a.push(wa.rate);
        failed += wc.failed + wa.failed;
        err ??= wc.firstError ?? wa.firstError;
      }
      // The ratio is the median of the rounds' own ratios: a ceiling window
      // and the agent window right after it share the machine's load of
      // that moment (7 other engineers on 2 cores), which a ratio of the
      // medians would not pair.
      const ratio = median(a.map((x, i) => x / c[i]!));
      const cpuUs: [number, number] = [(1e6 * cpu.c) / Math.max(1, cpu.cn), (1e6 * cpu.a) / Math.max(1, cpu.an)];
      const row: Row = { name, ceiling: median(c), agent: median(a), ratio, cpuUs, target, failed, note: err ? `first error: ${err}` : note };
      rows.push(row);
      console.log(`${name}: ceiling ${c.map((x) => Math.round(x)).join("/")} agent ${a.map((x) => Math.round(x)).join("/")} req/s; ratio ${ratio.toFixed(2)}${target ? ` (target >= ${target})` : ""}; server CPU per call: ceiling ${Math.round(cpuUs[0])} µs, agent ${Math.round(cpuUs[1])} µs (${(cpuUs[0] / cpuUs[1]).toFixed(2)})${failed ? `; ${failed} failed (${err})` : ""}`);
    };

    const fetchBody = async (path: string) => {
      return new Promise<string>((resolve, reject) => {
          https.get({ host: "127.0.0.1", port: agentPort, path, ca: pki.ca, cert: pki.cert, key: pki.key, servername: "localhost" }, (res) => {
            let b = "";
            res.setEncoding("utf8");
            res.on("data", (d) => (b += d));
            res.on("end", () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`${path}: HTTP ${res.statusCode} ${b}`))));
          }).on("error", reject);
        });
    };
    const rest = async (name: string, path: string, target?: number) => {
      if (!wanted(name)) return;
      await setCeilingBody(path, await fetchBody(path));
      const c = restCalls(ports.restPort, path, pki);
      const a = restCalls(agentPort, path, pki);
      try {
        await measure(name, c.calls, a.calls, target);
      } finally {
        c.close();
        a.close();
      }
    };
    const rpcUrl = (port: number) => `https://127.0.0.1:${port}`;
    const rpc = async (name: string, proto: Proto, call: (c: ReturnType<typeof rpcClients>[number]) => Promise<unknown>, target?: number) => {
      if (!wanted(name)) return;
      const c = rpcClients(rpcUrl(ports.rpcPort), pki, proto);
      const a = rpcClients(rpcUrl(agentPort), pki, proto);
      await measure(name, c.map((x) => () => call(x).then(() => undefined)), a.map((x) => () => call(x).then(() => undefined)), target);
    };

    const amphoraId = readFileSync(join(stateDir, "amphora-id"), "utf8").trim();
    const admin = rpcClients(agent.url, pki, "connect-binary")[0]!.lb;
    const addLbs = async (n: number) => {
      for (let i = 0; i < n; i++) {
        // A start can fail on a machine this busy (a port taken meanwhile): try another.
        for (let attempt = 1; ; attempt++) {
          const lbId = crypto.randomUUID();
          const cfg = octaviaConfig({ lbId, runDir: stateDir, listeners: [{ port: await freePort(), members: [], returnBody: "ok" }] });
          await admin.putConfig({ amphoraId, lbId, config: cfg.text });
          lbIds.push(lbId);
          try {
            await admin.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
            break;
          } catch (e) {
            console.log(`starting load balancer ${lbId} failed (attempt ${attempt}): ${(e as Error).message}`);
            if (attempt >= 3) throw e;
          }
        }
      }
    };

    console.log(`load average before: ${load0.map((x) => x.toFixed(2)).join(" ")}; ${CLIENTS} clients, ${ROUNDS} rounds of ${WINDOW_MS} ms windows`);
    await rest("REST GET /1.0/listeners, 0 LBs", "/1.0/listeners", 0.7);
    await rest("REST GET /1.0/info", "/1.0/info", 0.7);
    await rest("REST GET /1.0/details", "/1.0/details");
    const apiVersion = (x: ReturnType<typeof rpcClients>[number]) => x.system.getApiVersion({});
    await rpc("GetApiVersion, Connect binary (HTTP/2)", "connect-binary", apiVersion, 0.9);
    await rpc("GetApiVersion, Connect JSON (HTTP/2)", "connect-json", apiVersion);
    await rpc("GetApiVersion, gRPC", "grpc", apiVersion);
    if (wanted("1 LB") || wanted("GetLoadBalancerStatus") || wanted(`${MANY_LBS} LBs`)) {
      await addLbs(1);
      await rest("REST GET /1.0/listeners, 1 LB", "/1.0/listeners");
      const lbId = lbIds[0]!;
      await rpc("GetLoadBalancerStatus, Connect binary, 1 LB", "connect-binary", (x) => x.lb.getLoadBalancerStatus({ lbId }));
    }
    if (wanted(`${MANY_LBS} LBs`)) {
      await addLbs(MANY_LBS - 1);
      await rest(`REST GET /1.0/listeners, ${MANY_LBS} LBs`, "/1.0/listeners");
    }
    for (const lbId of lbIds.splice(0)) await admin.deleteLoadBalancer({ lbId });
    const load1 = loadavg();

    console.log("\n| path | ceiling req/s | agent req/s | ratio | target | server CPU µs/call, ceiling / agent |\n|---|---|---|---|---|---|");
    for (const r of rows) {
      const ratio = r.ratio;
      console.log(`| ${r.name} | ${Math.round(r.ceiling)} | ${Math.round(r.agent)} | ${ratio.toFixed(2)} | ${r.target ? `>= ${r.target}${ratio >= r.target ? "" : " (missed)"}` : ""} | ${Math.round(r.cpuUs[0])} / ${Math.round(r.cpuUs[1])} |${r.failed ? ` ${r.failed} failed: ${r.note}` : ""}`);
    }
    if (starts.length) console.log(`| agent start to listening (compiled, median of 3) | | ${Math.round(median(starts))} ms (${starts.map(Math.round).join("/")}) | | <= 500 ms |`);
    if (rss.length) console.log(`| agent idle RSS 3 s after start (median of 3) | | ${Math.round(median(rss))} MB (${rss.map(Math.round).join("/")}) | | <= 70 MB |`);
    if (settled.length) console.log(`| agent idle RSS ${SETTLED_S} s after start (one start; every 5 s from 5 s) | | ${Math.round(settled.at(-1)!)} MB (${settled.map(Math.round).join("/")}) | | <= 70 MB |`);
    console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${load1.map((x) => x.toFixed(2)).join(" ")}`);
  } finally {
    for (const p of procs.reverse()) await stopProc(p);
    await killHaproxiesUnder(stateDir);
    rmSync(dir, { recursive: true, force: true });
  }
}

