// Shared helpers for tests that run real haproxy: free ports, loopback
// backend HTTP servers, Octavia-style config generation, HTTP probes, and
// cleanup of every haproxy started under a temp state directory.
import { createServer as createHttpServer, request as httpRequest, type Server } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";

// Test files run in parallel processes (node --test --test-concurrency=2).
// A port one process has handed out but whose taker has not bound it yet (or
// has let go of it for a restart) looks free to every other process, so the
// hand-out is recorded as a lock file named after the port, holding the
// owner's pid, in one folder shared by all test processes. Each process
// removes its own lock files when it exits.
const PORT_LOCKS = join(tmpdir(), "amphora-test-ports");
const myPorts = new Set<number>();
process.once("exit", () => {
  for (const port of myPorts) rmSync(join(PORT_LOCKS, String(port)), { force: true });
  try {
    rmdirSync(PORT_LOCKS);
  } catch {
    // Another test process still holds ports.
  }
});

function lockPort(port: number): boolean {
  mkdirSync(PORT_LOCKS, { recursive: true });
  try {
    writeFileSync(join(PORT_LOCKS, String(port)), String(process.pid), { flag: "wx" });
    return true;
  } catch {
    // Held by another test process, or left by one that was killed: either
    // way pick another port (npm test removes locks of dead owners at the end;
    // taking one over here could let two processes win it).
    return false;
  }
}

/**
 * A TCP port on 127.0.0.1 that is free now and stays reserved to this test
 * process, for something the test starts later (haproxy, an agent restarted
 * on the same port).
 *
 * Picked at random from 20000-32767, below Linux's default ephemeral range
 * (32768-60999): a port the kernel hands out for bind(0) or as the source
 * port of an outgoing connection could be taken between this check and the
 * real bind, which once made haproxy fail to start in CI.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (myPorts.has(port) || !lockPort(port)) continue;
    myPorts.add(port);
    const srv = createNetServer();
    const ok = await new Promise<boolean>((res) => {
      srv.once("error", () => res(false));
      srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => res(true));
    });
    if (!ok) continue; // in use by something else: keep it locked, pick another
    await new Promise<void>((res) => srv.close(() => res()));
    return port;
  }
  throw new Error("no free TCP port found in 20000-32767 after 200 tries");
}

export interface Backend {
  port: number;
  name: string;
  /** Requests served so far. */
  hits: number;
  server: Server;
  close(): Promise<void>;
}

/**
 * An HTTP server on 127.0.0.1 answering every request with its `name`
 * (text/plain). `?delay=MS` in the path delays the answer (slow requests).
 */
export async function startBackend(name: string): Promise<Backend> {
  const b = { hits: 0 } as Backend;
  const server = createHttpServer(async (req, res) => {
    b.hits++;
    req.resume();
    const delay = Number(/[?&]delay=(\d+)/.exec(req.url ?? "")?.[1] ?? 0);
    if (delay) await sleep(delay);
    res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(name), "x-backend": name });
    res.end(name);
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((res, rej) => server.once("error", rej).listen(0, "127.0.0.1", () => res()));
  return Object.assign(b, {
    port: (server.address() as AddressInfo).port,
    name,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    },
  });
}

export interface MemberSpec {
  id?: string;
  port: number;
  address?: string;
}

export interface ListenerSpec {
  /** Listener uuid (frontend name); random when omitted. */
  id?: string;
  port: number;
  address?: string;
  mode?: "http" | "tcp";
  /** Absolute path of a PEM: makes the listener TERMINATED_HTTPS. */
  crt?: string;
  /** Absolute path of a haproxy crt-list: TERMINATED_HTTPS with SNI. */
  crtList?: string;
  poolId?: string;
  members: MemberSpec[];
  /** Answer directly with this body instead of proxying (no members needed). */
  returnBody?: string;
}

export interface ConfigSpec {
  lbId: string;
  listeners: ListenerSpec[];
  /** Folder for the `stats socket` (a temp dir of the test). */
  runDir: string;
  /** Recommended for controllers: no ECONNRESET for keep-alive clients across reloads. */
  idleCloseOnResponse?: boolean;
  /** Old workers are killed after this long (default "5s"). */
  hardStopAfter?: string;
  /** Extra lines appended to `global`. */
  globalExtra?: string[];
  /** Extra lines appended to `defaults`. */
  defaultsExtra?: string[];
  /** Adds a `peers` section naming this amphora (pass peerName(amphoraId)) as Octavia does for ACTIVE_STANDBY. */
  peer?: { name: string; port: number };
}

/** Resolved ids, so tests can refer to listeners/pools/members by uuid. */
export interface GeneratedConfig {
  text: string;
  listeners: (ListenerSpec & { id: string; poolId: string; members: (MemberSpec & { id: string })[] })[];
}

/**
 * An haproxy.cfg shaped like Octavia's templates: first line names the load
 * balancer, one `frontend <listener_id>`, backends `<pool_id>:<listener_id>`,
 * `server <member_id>`, and a `stats socket` in global.
 */
export function octaviaConfig(spec: ConfigSpec): GeneratedConfig {
  const listeners = spec.listeners.map((l) => ({
    ...l,
    id: l.id ?? randomUUID(),
    poolId: l.poolId ?? randomUUID(),
    members: l.members.map((m) => ({ ...m, id: m.id ?? randomUUID() })),
  }));
  const g: string[] = [
    `# Configuration for loadbalancer ${spec.lbId}`,
    "global",
    "    daemon",
    `    stats socket ${join(spec.runDir, `${spec.lbId}.sock`)} mode 0666 level user`,
    "    maxconn 4096",
    "    noreuseport",
    `    hard-stop-after ${spec.hardStopAfter ?? "5s"}`,
    ...(spec.globalExtra ?? []).map((l) => `    ${l}`),
    "",
    "defaults",
    "    retries 3",
    "    option redispatch",
    "    timeout connect 5s",
    "    timeout client 50s",
    "    timeout server 50s",
    ...(spec.defaultsExtra ?? []).map((l) => `    ${l}`),
    "",
  ];
  if (spec.peer) {
    g.push(`peers ${spec.lbId.replace(/-/g, "")}_peers`, `    peer ${spec.peer.name} 127.0.0.1:${spec.peer.port}`, "");
  }
  for (const l of listeners) {
    const mode = l.mode ?? "http";
    const backend = `${l.poolId}:${l.id}`;
    g.push(
      `frontend ${l.id}`,
      "    maxconn 4096",
      `    bind ${l.address ?? "127.0.0.1"}:${l.port}${l.crt ? ` ssl crt ${l.crt}` : l.crtList ? ` ssl crt-list ${l.crtList}` : ""}`,
      `    mode ${mode}`,
    );
    if (mode === "http" && spec.idleCloseOnResponse !== false) g.push("    option idle-close-on-response");
    if (l.returnBody !== undefined) g.push(`    http-request return status 200 content-type text/plain string "${l.returnBody}"`);
    else g.push(`    default_backend ${backend}`);
    g.push("");
    if (l.returnBody === undefined) {
      g.push(`backend ${backend}`, `    mode ${mode}`, "    balance roundrobin", "    fullconn 4096");
      for (const m of l.members) g.push(`    server ${m.id} ${m.address ?? "127.0.0.1"}:${m.port} weight 1`);
      g.push("");
    }
  }
  return { text: g.join("\n") + "\n", listeners };
}

export interface HttpResult {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One GET on a fresh connection (no keep-alive), rejecting on network errors. */
export function httpGet(port: number, path = "/", host = "127.0.0.1", timeoutMs = 3000): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${host}:${port}${path} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** Polls until GET returns `expected` as body; returns the time it took. */
export async function waitForBody(port: number, expected: string, timeoutMs = 10_000, intervalMs = 2): Promise<number> {
  const start = performance.now();
  let last = "";
  while (performance.now() - start < timeoutMs) {
    try {
      const r = await httpGet(port);
      if (r.body === expected) return performance.now() - start;
      last = `${r.status} ${r.body.slice(0, 80)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(intervalMs);
  }
  throw new Error(`port ${port} did not answer ${JSON.stringify(expected)} within ${timeoutMs} ms (last: ${last})`);
}

function findPidFiles(dir: string): string[] {
  let out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) out = out.concat(findPidFiles(p));
    else if (n.endsWith(".pid")) out.push(p);
  }
  return out;
}

function isHaproxy(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && readFileSync(`/proc/${pid}/comm`, "utf8").trim().startsWith("haproxy");
  } catch {
    return false;
  }
}

/**
 * Kills (SIGKILL) every haproxy master whose pid file lies under `dir`, and
 * every haproxy whose command line names a file under `dir` (so it works
 * even after the folder was removed), and waits for them to go. Only
 * processes started on our own temp folders are touched. Workers exit
 * within a millisecond of their master.
 */
export async function killHaproxiesUnder(dir: string): Promise<number[]> {
  const killed: number[] = [];
  const kill = (pid: number) => {
    if (killed.includes(pid)) return;
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // Already gone.
    }
  };
  for (const f of findPidFiles(dir)) {
    let pid = NaN;
    try {
      pid = Number(readFileSync(f, "utf8").trim().split(/\s+/)[0]);
    } catch {
      continue;
    }
    // A pid file outlives its haproxy, and pids are reused quickly on a busy
    // machine: only a haproxy whose command line names a file under `dir`
    // is ours (another test's haproxy may hold the pid now).
    if (!Number.isInteger(pid) || pid <= 0 || !isHaproxy(pid) || !namesFileUnder(pid, dir)) continue;
    kill(pid);
  }
  // Also masters whose pid file is already gone (folder removed by an
  // earlier hook): a haproxy whose command line names a file under `dir`
  // was started by this test.
  for (const pid of haproxiesNaming(dir)) kill(pid);
  const deadline = Date.now() + 3000;
  while (killed.some(isHaproxy) && Date.now() < deadline) await sleep(10);
  return killed;
}

/** Live haproxy processes with an argument inside `dir`. */
function namesFileUnder(pid: number, dir: string): boolean {
  const prefix = dir.endsWith("/") ? dir : dir + "/";
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").some((a) => a.startsWith(prefix));
  } catch {
    return false;
  }
}

function haproxiesNaming(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || !isHaproxy(pid)) continue;
    if (namesFileUnder(pid, dir)) out.push(pid);
  }
  return out;
}

/** True when the process exists and is not a zombie. */
export function processRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export interface TestPem {
  key: string;
  cert: string;
  /** key + certificate, the bundle controllers upload. */
  bundle: string;
}

/** A self-signed EC certificate for `cn` made with openssl (files in `dir`). */
export async function selfSignedPem(dir: string, cn: string): Promise<TestPem> {
  const { runChecked } = await import("../../src/system/exec.js");
  const key = join(dir, `${cn}-${randomUUID()}.key`);
  const crt = join(dir, `${cn}-${randomUUID()}.crt`);
  await runChecked("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
    "-subj", `/CN=${cn}`, "-days", "2", "-addext", `subjectAltName=DNS:${cn}`,
  ]);
  const k = readFileSync(key, "utf8");
  const c = readFileSync(crt, "utf8");
  return { key: k, cert: c, bundle: k + c };
}
