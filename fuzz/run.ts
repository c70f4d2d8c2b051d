// `npm run fuzz [-- --seed N --cases N --concurrency N]`: property-based
// fuzzing of a real --dev agent (its own process, its own state dir)
// through both front doors: Connect binary and JSON, gRPC and gRPC-Web,
// and REST, with requests generated from the proto descriptors
// (fuzz/generate.ts). Asserts: the agent never crashes and keeps answering,
// no client error is answered as a server fault (internal / unknown /
// HTTP 5xx, except the 500s Octavia's controller expects), no file appears
// outside the state directory, and no process is left behind.
//
// Safety: the run re-executes itself in a fresh network namespace
// (`unshare --net`, loopback only), so a plug or interface rule the fuzzer
// reaches touches no interface of the host, and every process it starts
// (haproxy, keepalived) can be found afterwards by its namespace.
// Reproduce a run with the seed it prints.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http2 from "node:http2";
import https from "node:https";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { ScalarType, type DescField } from "@bufbuild/protobuf";
import { encodeBinary, encodeJson, fuzzCase, MARK, REST, type FuzzCase } from "./generate.js";
import { startAgentProcess, type AgentProcess } from "../test/support/agent-child.js";
import { envelope, outcomeOf, rawRequest, type RawAnswer } from "../test/support/raw-rpc.js";
import { killHaproxiesUnder } from "../test/support/haproxy.js";

export interface FuzzOptions {
  seed: number;
  cases: number;
  concurrency: number;
  /** Print progress lines. */
  verbose?: boolean;
}

export interface Finding {
  index: number;
  what: string;
  request: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  byDoor: Record<string, number>;
  byTransport: Record<string, number>;
  byOutcome: Record<string, number>;
  methods: number;
  findings: Finding[];
  rssMb: { start: number; end: number };
  fds: { start: number; end: number };
  leftBehind: string[];
  daemonsEnded: number;
  outsideFiles: string[];
  seconds: number;
}

const CONTENT_TYPES: Record<string, string> = {
  "connect-proto": "application/proto",
  "connect-json": "application/json",
  grpc: "application/grpc",
  "grpc-web": "application/grpc-web+proto",
};
/**
 * Server-side failures that are the agent's documented answer, not a
 * mishandled client error: a keepalived start/reload that fails (not
 * running, no configuration uploaded, a fuzzed configuration keepalived
 * accepts but cannot run with) fails over REST the way Octavia's agent fails
 * it (its `service octavia-keepalived ACTION` exits non-zero: 500), and the
 * controller relies on that status. Over RPC the state-caused ones are
 * failed_precondition; a configuration keepalived accepts but cannot run
 * with stays internal.
 */
const EXPECTED_FAILURES = [/^Failed to (start|reload|stop) keepalived\b/, /"message":"Failed to (start|reload|stop) keepalived"/];
/** RPC outcomes that mean "the agent failed", never a client's mistake. */
const SERVER_FAULTS = new Set(["internal", "unknown", "data_loss"]);

/** encodeURIComponent that also takes lone surrogates (as their UTF-8 replacement bytes). */
function percentEncode(s: string): string {
  return Array.from(Buffer.from(s, "utf8"), (b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`)).join("");
}

function pathValue(f: DescField, v: unknown): string {
  if (f.fieldKind === "enum") return f.enum.values.find((x) => x.number === v)?.localName.toLowerCase() ?? String(v);
  if (f.fieldKind === "scalar" && f.scalar === ScalarType.BYTES) return Buffer.from(v as Uint8Array).toString("latin1");
  return String(v ?? "");
}

interface Prepared {
  path: string;
  method: string;
  contentType?: string;
  body: Buffer | string;
  headers: Record<string, string>;
  door: string;
}

function prepare(c: FuzzCase): Prepared {
  const rpcPath = `/${c.method.parent.typeName}/${c.method.name}`;
  const stream = c.method.methodKind === "server_streaming";
  const deadline = { "grpc-timeout": "2S", "connect-timeout-ms": "2000", ...c.headers };
  switch (c.door) {
    case "connect-proto":
      return stream
        ? { door: c.door, path: rpcPath, method: "POST", contentType: "application/connect+proto", body: envelope(encodeBinary(c)), headers: deadline }
        : { door: c.door, path: rpcPath, method: "POST", contentType: "application/proto", body: encodeBinary(c), headers: deadline };
    case "connect-json":
      return stream
        ? { door: c.door, path: rpcPath, method: "POST", contentType: "application/connect+json", body: envelope(Buffer.from(encodeJson(c))), headers: deadline }
        : { door: c.door, path: rpcPath, method: "POST", contentType: "application/json", body: encodeJson(c), headers: deadline };
    case "grpc":
    case "grpc-web":
      return { door: c.door, path: rpcPath, method: "POST", contentType: CONTENT_TYPES[c.door], body: envelope(encodeBinary(c)), headers: deadline };
    case "rest": {
      const e = REST.get(c.method)!;
      const m = c.message as unknown as Record<string, unknown>;
      const enc = c.mutation === "raw-path" ? (s: string) => s : percentEncode;
      const path = e.segments.map((s) => ("literal" in s ? s.literal : enc(pathValue(s.field, m[s.field.localName])))).join("/");
      const query = c.mutation === "junk-query" ? "?force=maybe&stop_timeout_ms=-1&x=%zz&..=/etc" : "";
      let body: Buffer | string = "";
      let contentType: string | undefined;
      switch (e.body.kind) {
        case "text":
          body = String(m[e.body.field.localName] ?? "");
          contentType = "text/plain";
          break;
        case "bytes":
          body = Buffer.from((m[e.body.field.localName] as Uint8Array | undefined) ?? c.noise);
          contentType = "application/octet-stream";
          break;
        case "json-list":
        case "json-object":
          body = encodeJson(c);
          if (e.body.kind === "json-list") {
            try {
              body = JSON.stringify(Object.values(JSON.parse(body) as Record<string, unknown>)[0] ?? []);
            } catch {
              // keep the spoiled body
            }
          }
          contentType = "application/json";
          break;
      }
      return { door: c.door, path: "/" + path + query, method: e.verb, contentType, body, headers: { ...c.headers } };
    }
  }
}

/** Why an answer is a finding, or undefined. */
function judge(c: FuzzCase, p: Prepared, a: RawAnswer): { outcome: string; finding?: string } {
  if (c.door === "rest") {
    const e = REST.get(c.method)!;
    const outcome = `rest-${a.status}`;
    if (a.status < 500 || a.status === 503) return { outcome };
    // Where Octavia's agent answers 500 for invalid input, its controller expects 500.
    if (a.status === e.invalidStatus && a.body.toString().includes(JSON.stringify(e.invalidMessage).slice(1, -1))) return { outcome };
    if (EXPECTED_FAILURES.some((r) => r.test(a.body.toString()))) return { outcome: `${outcome}-expected` };
    return { outcome, finding: `REST ${a.status}: ${a.body.toString("utf8").slice(0, 300)}` };
  }
  const o = outcomeOf(p.contentType!, a);
  if (EXPECTED_FAILURES.some((r) => r.test(o.message))) return { outcome: `${o.code}-expected` };
  if (SERVER_FAULTS.has(o.code) || (o.code.startsWith("http-") && o.httpStatus >= 500)) {
    return { outcome: o.code, finding: `${o.code} (HTTP ${o.httpStatus}): ${o.message.slice(0, 300)}` };
  }
  return { outcome: o.code };
}

function describe(c: FuzzCase, p: Prepared): string {
  const body = typeof p.body === "string" ? p.body : p.body.toString("base64");
  return `${p.door} over ${c.transport} ${p.method} ${p.path.slice(0, 200)} (${c.method.parent.name}.${c.method.name}, mutation ${c.mutation}, headers ${JSON.stringify(c.headers)}) body ${body.slice(0, 200)}`;
}

function netnsOf(pid: number | "self"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

/** Processes other than this one that share its network namespace (only ever started by this run when isolated). */
function processesInMyNetns(): { pid: number; cmd: string }[] {
  const mine = netnsOf("self");
  const out: { pid: number; cmd: string }[] = [];
  for (const d of readdirSync("/proc")) {
    const pid = Number(d);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (netnsOf(pid) !== mine) continue;
    let cmd = "";
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
    } catch {
      continue;
    }
    out.push({ pid, cmd });
  }
  return out;
}

/** Files named with the fuzz mark anywhere they could land outside `inside`, plus mtimes of the classic traversal targets. */
function filesOutside(inside: string, since: number): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth < 0 || dir.startsWith(inside)) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      if (p.startsWith(inside)) continue;
      if (n.includes(MARK)) found.push(p);
      try {
        if (statSync(p).isDirectory() && !p.startsWith("/proc") && !p.startsWith("/sys")) walk(p, depth - 1);
      } catch {
        // vanished
      }
    }
  };
  for (const [d, depth] of [["/", 1], ["/etc", 3], ["/root", 2], ["/var/lib", 2], ["/run", 2], [tmpdir(), 2], ["/usr/lib/ssl", 2]] as const) walk(d, depth);
  for (const f of ["/etc/passwd", "/etc/hosts", "/etc/shadow", "/etc/haproxy/haproxy.cfg", "/etc/keepalived/keepalived.conf"]) {
    try {
      if (statSync(f).mtimeMs >= since) found.push(`${f} (modified)`);
    } catch {
      // absent
    }
  }
  return found;
}

async function session(a: AgentProcess): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(a.url, { ca: a.ca, cert: a.cert, key: a.key });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Sends `o.cases` generated requests to a running agent and adds what it saw to `report`. */
export async function fuzzBurst(agent: AgentProcess, o: FuzzOptions, report: FuzzReport): Promise<void> {
  const cases = fc.sample(fuzzCase, { seed: o.seed, numRuns: o.cases });
  report.methods = new Set(cases.map((c) => c.method)).size;
  const sessions = await Promise.all([0, 1].map(() => session(agent)));
  const h1Agent = new https.Agent({ keepAlive: true, maxSockets: 2 });
  let next = 0;
  const worker = async (w: number) => {
    for (;;) {
      const i = next++;
      if (i >= cases.length) return;
      const c = cases[i]!;
      const p = prepare(c);
      let s = sessions[w % sessions.length]!;
      if (s.destroyed || s.closed) {
        s = sessions[w % sessions.length] = await session(agent);
      }
      let a: RawAnswer;
      report.byTransport[c.transport] = (report.byTransport[c.transport] ?? 0) + 1;
      try {
        a = await Promise.race([
          c.transport === "h1" ? h1Request(agent, h1Agent, p) : rawRequest(s, p.path, p.contentType, p.body, h2Headers(p.headers), p.method),
          new Promise<never>((_, j) => setTimeout(() => j(new Error("no answer within 20 s")), 20_000).unref()),
        ]);
      } catch (e) {
        // A :path or header value with bytes HTTP/2 forbids (controls,
        // spaces, non-ASCII) is a malformed request: nghttp2 resets the
        // stream, as RFC 9113 says. A header node's client will not send
        // at all is no request.
        const err = e as Error & { code?: string };
        const refused = CLIENT_REFUSALS.has(err.code ?? "");
        const malformed = !refused && /NGHTTP2_PROTOCOL_ERROR/.test(err.message) && (/[^\x21-\x7e]/.test(p.path) || Object.keys(c.headers).length > 0);
        if (!malformed && !refused) report.findings.push({ index: i, what: `request failed: ${err.message}`, request: describe(c, p) });
        report.cases++;
        report.byDoor[c.door] = (report.byDoor[c.door] ?? 0) + 1;
        const k = refused ? "client-refused-header" : malformed ? "h2-malformed" : "no-answer";
        report.byOutcome[k] = (report.byOutcome[k] ?? 0) + 1;
        continue;
      }
      const j = judge(c, p, a);
      report.cases++;
      report.byDoor[c.door] = (report.byDoor[c.door] ?? 0) + 1;
      report.byOutcome[j.outcome] = (report.byOutcome[j.outcome] ?? 0) + 1;
      if (j.finding) report.findings.push({ index: i, what: j.finding, request: describe(c, p) });
      if (i % 500 === 499) {
        // Still alive and answering a fresh connection.
        if (!agent.alive()) throw new Error(`the agent died at case ${i}`);
        const fresh = await session(agent);
        const info = await rawRequest(fresh, "/1.0/info", undefined, "", {}, "GET");
        fresh.close();
        if (info.status !== 200) report.findings.push({ index: i, what: `GET /1.0/info answered ${info.status} after case ${i}`, request: "" });
        if (o.verbose) process.stdout.write(`  ${i + 1}/${cases.length} cases, ${report.findings.length} findings\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  for (const s of sessions) s.close();
  h1Agent.destroy();
}

/** Errors node's own client raises for a header it will not send (nothing reached the agent). */
const CLIENT_REFUSALS = new Set(["ERR_INVALID_CHAR", "ERR_INVALID_HTTP_TOKEN", "ERR_HTTP2_INVALID_CONNECTION_HEADERS", "ERR_HTTP2_INVALID_PSEUDOHEADER", "ERR_INVALID_ARG_VALUE", "ERR_HTTP2_HEADER_SINGLE_VALUE", "ERR_UNESCAPED_CHARACTERS"]);

/** HTTP/2 carries the authority as :authority. */
function h2Headers(h: Record<string, string>): Record<string, string> {
  if (!("host" in h)) return h;
  const { host, ...rest } = h;
  return { ...rest, ":authority": host! };
}

/** The request over HTTP/1.1 (keep-alive), answered as rawRequest answers. */
function h1Request(a: AgentProcess, agent: https.Agent, p: Prepared): Promise<RawAnswer> {
  const u = new URL(a.url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...p.headers };
    if (p.contentType) headers["content-type"] = p.contentType;
    const req = https.request({ host: u.hostname, port: u.port, servername: "localhost", path: p.path, method: p.method, headers, agent, ca: a.ca, cert: a.cert, key: a.key }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(p.method === "GET" || p.method === "DELETE" ? undefined : p.body);
  });
}

export function emptyReport(seed: number): FuzzReport {
  return {
    seed, cases: 0, byDoor: {}, byTransport: {}, byOutcome: {}, methods: 0, findings: [], rssMb: { start: 0, end: 0 },
    fds: { start: 0, end: 0 }, leftBehind: [], daemonsEnded: 0, outsideFiles: [], seconds: 0,
  };
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const t0 = Date.now();
  const root = mkdtempSync(join(tmpdir(), "amphora-fuzz-"));
  const stateDir = join(root, "state");
  const cwd = join(root, "cwd");
  mkdirSync(cwd);
  const report = emptyReport(o.seed);
  let agent: AgentProcess | undefined;
  try {
    agent = await startAgentProcess({ dev: true, stateDir }, cwd);
    const p0 = await agent.probe(true);
    report.rssMb.start = p0.rssMb;
    report.fds.start = p0.fds;
    await fuzzBurst(agent, o, report);
    if (!agent.alive()) throw new Error("the agent died");
    const s = await session(agent);
    const info = await rawRequest(s, "/1.0/info", undefined, "", {}, "GET");
    s.close();
    if (info.status !== 200) report.findings.push({ index: -1, what: `GET /1.0/info answered ${info.status} at the end`, request: "" });
    await new Promise((r) => setTimeout(r, 500));
    const p1 = await agent.probe(true);
    report.rssMb.end = p1.rssMb;
    report.fds.end = p1.fds;
  } finally {
    await agent?.stop();
    // haproxy and keepalived outlive the agent by design: end the ones this run made.
    report.daemonsEnded = (await killHaproxiesUnder(stateDir)).length;
    for (const p of processesInMyNetns().filter((x) => x.cmd.includes(stateDir))) {
      try {
        process.kill(p.pid, "SIGKILL");
        report.daemonsEnded++;
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    if (process.env.AMPHORA_FUZZ_ISOLATED === "1") {
      report.leftBehind = processesInMyNetns().map((p) => `${p.pid} ${p.cmd.slice(0, 200)}`);
    } else {
      report.leftBehind = processesInMyNetns().filter((p) => p.cmd.includes(root)).map((p) => `${p.pid} ${p.cmd.slice(0, 200)}`);
    }
    const stray = readdirSync(root).filter((n) => n !== "state" && n !== "cwd").concat(readdirSync(cwd).map((n) => `cwd/${n}`));
    report.outsideFiles = [...stray.map((n) => join(root, n)), ...filesOutside(stateDir, t0)];
    rmSync(root, { recursive: true, force: true });
    report.seconds = Math.round((Date.now() - t0) / 100) / 10;
  }
  return report;
}

export function failures(r: FuzzReport): string[] {
  const out: string[] = [];
  for (const f of r.findings) out.push(`case ${f.index}: ${f.what}\n    ${f.request}`);
  for (const p of r.leftBehind) out.push(`process left behind: ${p}`);
  for (const f of r.outsideFiles) out.push(`file outside the state directory: ${f}`);
  return out;
}

export function printReport(r: FuzzReport): void {
  console.log(`fuzz: seed ${r.seed}, ${r.cases} cases over ${r.methods} methods in ${r.seconds} s`);
  console.log(`  by door: ${JSON.stringify(r.byDoor)}`);
  console.log(`  by transport: ${JSON.stringify(r.byTransport)}`);
  console.log(`  outcomes: ${JSON.stringify(Object.fromEntries(Object.entries(r.byOutcome).sort((a, b) => b[1] - a[1])))}`);
  console.log(`  agent RSS ${r.rssMb.start} -> ${r.rssMb.end} MB, fds ${r.fds.start} -> ${r.fds.end}; haproxy/keepalived ended after the run: ${r.daemonsEnded}`);
  const f = failures(r);
  console.log(f.length ? `  ${f.length} FAILURES:\n  ${f.slice(0, 30).join("\n  ")}` : "  no crash, no server fault for a client error, no file outside the state dir, no process left behind");
  console.log(`  reproduce: npm run fuzz -- --seed ${r.seed} --cases ${r.cases}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      cases: { type: "string", default: "10000" },
      concurrency: { type: "string", default: "8" },
      "no-isolate": { type: "boolean" },
    },
  });
  const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  if (!values["no-isolate"] && process.env.AMPHORA_FUZZ_ISOLATED !== "1") {
    // Again, in a network namespace of its own (loopback only).
    const self = fileURLToPath(import.meta.url);
    const args = [process.execPath, ...process.execArgv, self, "--seed", String(seed), "--cases", values.cases!, "--concurrency", values.concurrency!];
    const r = spawnSync("unshare", ["--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", ...args], {
      stdio: "inherit",
      env: { ...process.env, AMPHORA_FUZZ_ISOLATED: "1" },
    });
    if (r.error) throw r.error;
    process.exit(r.status ?? 1);
  }
  console.log(`fuzz seed ${seed} (reproduce with --seed ${seed})`);
  const r = await runFuzz({ seed, cases: Number(values.cases), concurrency: Number(values.concurrency), verbose: true });
  printReport(r);
  process.exit(failures(r).length ? 1 : 0);
}

if (process.argv[1] && existsSync(process.argv[1]) && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
