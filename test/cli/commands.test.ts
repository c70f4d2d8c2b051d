// The `amphora` subcommands as child processes against real agents: every
// subcommand once, --json parsed (response messages), human output (ages,
// units, one-line rows), settings from flags, env, config file and
// --dev-state, exit codes, fan-out with one agent down, errors with hints
// and no stack traces, `watch` in non-TTY mode, lb wait/apply --wait
// failing early, --verbose traces.
// Load balancers run on real haproxy (loopback); network and keepalived
// commands go to a second agent whose namespace is one this test creates.
import { describe, before, after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort, startBackend, octaviaConfig, httpGet, killHaproxiesUnder, selfSignedPem, type Backend } from "../support/haproxy.js";
import { Topology, ipv4Of } from "../network/netns.js";
import { vrrpConfig, stopKeepalived } from "../keepalived/support.js";
import { EXIT } from "../../src/cli/exit-codes.js";

const REPO = join(import.meta.dirname, "..", "..");
const VIP_MAC = "02:a5:00:00:0c:01";
const MEMBER_MAC = "02:a5:00:00:0c:02";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let home = "";

/**
 * Runs `bin/amphora.js ARGS` with a clean environment: the compiled CLI that
 * `npm test` builds first (a third of the start-up time of the sources
 * through tsx, and this file runs the CLI ~100 times); `source: true` runs
 * `node --import tsx src/cli/main.ts` instead.
 */
function cli(args: string[], o: { env?: Record<string, string>; stdin?: string; source?: boolean } = {}): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("AMPHORA_")) env[k] = v;
  // No user config file, no colours: what a script sees.
  Object.assign(env, { XDG_CONFIG_HOME: home, HOME: home }, o.env ?? {});
  const argv = o.source ? ["--import", "tsx", join(REPO, "src", "cli", "main.ts"), ...args] : [join(REPO, "bin", "amphora.js"), ...args];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, argv, { cwd: REPO, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(o.stdin ?? "");
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const json = <T = any>(r: Run): T => JSON.parse(r.stdout) as T;
const noStack = (s: string) => assert.doesNotMatch(s, /\n\s+at .+:\d+:\d+/, "no stack trace");

describe("amphora CLI", () => {
  const topo = new Topology();
  let work = "";
  let runDir = "";
  let lbAgent: TestAgent; // loopback haproxy
  let netAgent: TestAgent; // network + keepalived in a test namespace
  let ns = "";
  let backend: Backend;
  let downUrl = "";
  let A: string[] = []; // global flags for lbAgent
  let N: string[] = []; // global flags for netAgent

  before(async () => {
    home = mkdtempSync(join(tmpdir(), "amt-clihome-"));
    work = mkdtempSync(join(tmpdir(), "amt-cli-"));
    runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
    lbAgent = await startTestAgent();
    ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { macA: VIP_MAC });
    await topo.veth(ns, "eth2", peer, "p2", { macA: MEMBER_MAC });
    netAgent = await startTestAgent({ overrides: { netns: ns } });
    backend = await startBackend("cli-backend");
    downUrl = `https://127.0.0.1:${await freePort()}`;
    A = ["--agent", lbAgent.url, "--dev-state", lbAgent.stateDir];
    N = ["--agent", netAgent.url, "--dev-state", netAgent.stateDir];
  });
  after(async () => {
    await stopKeepalived(netAgent);
    // The agent first (it restarts a haproxy that dies while it runs), then haproxy.
    await lbAgent?.cleanup();
    if (lbAgent) await killHaproxiesUnder(lbAgent.stateDir);
    await netAgent?.cleanup();
    await backend?.close();
    await topo.cleanup();
    for (const d of [home, work, runDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test("--help everywhere, usage errors exit 2 with a hint", async () => {
    const top = ok(await cli(["--help"]), "--help");
    for (const c of ["info", "details", "listeners", "config put", "config get", "lb start", "lb stop", "lb reload", "lb delete", "cert put", "cert md5", "cert rm", "plug vip", "plug network", "vrrp put", "vrrp start", "stats", "watch"]) {
      assert.match(top.stdout, new RegExp(`\\n  ${c}`), `help lists ${c}`);
    }
    assert.match(top.stdout, /exit codes:/);
    const group = ok(await cli(["lb", "--help"]), "lb --help");
    assert.match(group.stdout, /amphora lb reload LB_ID/);
    const sub = ok(await cli(["lb", "stop", "--help"]), "lb stop --help");
    assert.match(sub.stdout, /--stop-timeout MS/);
    ok(await cli(["--version"], { source: true }), "--version from the sources");

    for (const [args, msg] of [
      [["bogus"], /unknown command 'bogus'/],
      [["lb", "frobnicate"], /unknown subcommand 'lb frobnicate'/],
      [["lb", "start"], /missing LB_ID/],
      [["info", "extra"], /unexpected argument 'extra'/],
      [["info", "--stop-timeout", "5"], /'amphora info' has no option --stop-timeout/],
      [["info", "--no-such-flag"], /Unknown option '--no-such-flag'/],
      [[...A, "config", "put", randomUUID(), join(work, "missing.cfg")], /cannot read config file .*missing\.cfg: no such file/],
      [["info", "--agent", lbAgent.url], /no --ca: give --ca FILE, set AMPHORA_CA/],
      [["info", "--dev-state", join(work, "nowhere")], /cannot read CA file .*nowhere\/pki\/ca\.pem/],
    ] as [string[], RegExp][]) {
      const r = await cli(args);
      assert.equal(r.code, EXIT.USAGE, `${args.join(" ")}: exit ${r.code} ${r.stderr}`);
      assert.match(r.stderr, msg);
      noStack(r.stderr);
    }
  });

  test("settings from flags, environment, config file with profiles, and --dev-state", async () => {
    const id = lbAgent.config.amphoraId;
    const pki = join(lbAgent.stateDir, "pki");
    // Explicit files.
    let r = ok(await cli(["info", "--json", "--agent", lbAgent.url, "--ca", join(pki, "ca.pem"), "--cert", join(pki, "client.pem"), "--key", join(pki, "client-key.pem")]), "flags");
    assert.equal(json(r).amphora_id, id);
    // Environment.
    r = ok(await cli(["info", "--json"], { env: { AMPHORA_AGENT: lbAgent.url, AMPHORA_DEV_STATE: lbAgent.stateDir } }), "env");
    assert.equal(json(r).amphora_id, id);
    // Config file (paths relative to it), profile chosen by flag, flags still win.
    const cfgDir = join(home, "amphora");
    rmSync(cfgDir, { recursive: true, force: true });
    const file = join(work, "cli.json");
    writeFileSync(file, JSON.stringify({ agent: downUrl, devState: lbAgent.stateDir, profiles: { net: { agent: netAgent.url, devState: netAgent.stateDir } } }));
    r = ok(await cli(["info", "--json", "--cli-config", file, "--profile", "net"]), "config file profile");
    assert.equal(json(r).amphora_id, netAgent.config.amphoraId);
    r = ok(await cli(["info", "--json", "--agent", lbAgent.url], { env: { AMPHORA_CONFIG: file } }), "config file + flag");
    assert.equal(json(r).amphora_id, id);
    // The default location is $XDG_CONFIG_HOME/amphora/cli.json.
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(join(cfgDir, "cli.json"), JSON.stringify({ agent: lbAgent.url, ca: join(pki, "ca.pem"), cert: join(pki, "client.pem"), key: join(pki, "client-key.pem") }));
    try {
      r = ok(await cli(["info", "--json"]), "default config file");
      assert.equal(json(r).amphora_id, id);
    } finally {
      rmSync(cfgDir, { recursive: true, force: true });
    }
    const bad = await cli(["info", "--cli-config", file, "--profile", "nope"]);
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /profile "nope" is not in .*cli\.json \(profiles: net\)/);
  });

  test("info, api-version, details, listeners: human and --json; every protocol", async () => {
    let r = ok(await cli([...A, "info"]), "info");
    assert.match(r.stdout, new RegExp(`amphora_id: +${lbAgent.config.amphoraId}`));
    // "grpcweb" is buf's spelling (the README's), "grpc-web" the older one.
    for (const protocol of ["connect", "grpc", "grpcweb", "grpc-web"]) {
      r = ok(await cli([...A, "info", "--json", "--protocol", protocol]), `info ${protocol}`);
      assert.equal(json(r).api_version, "1.0");
    }
    r = ok(await cli([...A, "api-version"]), "api-version");
    assert.equal(r.stdout, "1.0\n");
    r = ok(await cli([...A, "details", "--json"]), "details --json");
    const d = json(r);
    assert.ok(d.cpu_count >= 1);
    assert.equal(typeof d.memory.total, "string", "uint64 as a string, as in the Protobuf JSON mapping");
    r = ok(await cli([...A, "details"]), "details");
    assert.match(r.stdout, /INTERFACE +TX +RX/);
    r = ok(await cli([...A, "listeners", "--json"]), "listeners --json");
    assert.ok(Array.isArray(json(r).listeners), "ListListenersResponse, not a bare array");
    r = ok(await cli([...A, "details"]), "details human");
    assert.match(r.stdout, /total: +\d+(\.\d)?(KiB|MiB|GiB)\n/, "memory with units");
    assert.match(r.stdout, /INTERFACE +TX +RX\n\S+ +\d+(\.\d)?(B|KiB|MiB|GiB) /, "network counters with units");
  });

  test("load balancer lifecycle: config, lb, cert, listeners, stats, watch, apply, wait, delete", async () => {
    const lbId = randomUUID();
    const port = await freePort();
    const gen = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [{ port: backend.port }] }] });
    const listenerId = gen.listeners[0]!.id;
    const cfgFile = join(work, "haproxy.cfg");
    writeFileSync(cfgFile, gen.text);

    let r = ok(await cli([...A, "config", "put", lbId, cfgFile, "--json"]), "config put");
    const put = json(r);
    assert.equal(put.md5, createHash("md5").update(gen.text).digest("hex"));
    assert.equal(put.version, "1");
    r = ok(await cli([...A, "config", "get", lbId]), "config get");
    assert.equal(r.stdout, gen.text);
    r = ok(await cli([...A, "config", "get", lbId, "--json"]), "config get --json");
    assert.equal(json(r).md5, put.md5);

    // From standard input, with the md5 guard.
    ok(await cli([...A, "config", "put", lbId, "-", "--expected-md5", put.md5], { stdin: gen.text }), "config put -");
    const stale = await cli([...A, "config", "put", lbId, cfgFile, "--expected-md5", "0".repeat(32)]);
    assert.equal(stale.code, EXIT.SERVER);
    assert.match(stale.stderr, /error: config put failed: .*\[aborted\]/);
    assert.match(stale.stderr, /hint: the stored state changed since you read it/);

    r = ok(await cli([...A, "lb", "start", lbId]), "lb start");
    assert.match(r.stdout, /^OK/);
    assert.equal((await httpGet(port)).body, "cli-backend");
    r = ok(await cli([...A, "listeners"]), "listeners");
    assert.match(r.stdout, new RegExp(`${listenerId} +${lbId} +HTTP +ACTIVE`));
    r = ok(await cli([...A, "listeners", "--json"]), "listeners --json");
    assert.deepEqual(json(r).listeners.filter((l: any) => l.lb_id === lbId).map((l: any) => [l.uuid, l.status]), [[listenerId, "ACTIVE"]]);
    r = ok(await cli([...A, "lb", "wait", lbId, "--json"]), "lb wait");
    assert.deepEqual(json(r).listeners.map((l: any) => l.status), ["ACTIVE"], "ListListenersResponse, as `listeners --json`");
    r = ok(await cli([...A, "lb", "reload", lbId, "--json"]), "lb reload");
    assert.equal(json(r).message, "OK");
    r = ok(await cli([...A, "lb", "status", lbId, "--json"]), "lb status");
    assert.equal(json(r).status.state, "RUNNING");
    r = ok(await cli([...A, "lb", "status", lbId]), "lb status human");
    assert.match(r.stdout, /state: +RUNNING/);
    r = ok(await cli([...A, "lb", "list", "--json"]), "lb list");
    assert.ok(json(r).load_balancers.some((s: any) => s.lb_id === lbId && s.state === "RUNNING"));
    r = ok(await cli([...A, "lb", "list"]), "lb list human");
    assert.match(r.stdout, new RegExp(`${lbId} +RUNNING +running +`));
    assert.match(r.stdout, /WANTED .* RESTARTS +LAST_EXIT +LAST_ACTION/);

    // Certificates.
    const pem = await selfSignedPem(work, "www.example.com");
    const pemFile = join(work, "www.pem");
    writeFileSync(pemFile, pem.bundle);
    r = ok(await cli([...A, "cert", "put", lbId, pemFile, "--json"]), "cert put");
    const md5 = createHash("md5").update(pem.bundle).digest("hex");
    assert.equal(json(r).md5sum, md5);
    r = ok(await cli([...A, "cert", "md5", lbId, "www.pem"]), "cert md5");
    assert.equal(r.stdout, `${md5}\n`);
    ok(await cli([...A, "cert", "put", lbId, "-", "--name", "other.pem"], { stdin: pem.bundle }), "cert put -");
    ok(await cli([...A, "cert", "rm", lbId, "other.pem"]), "cert rm");
    const gone = await cli([...A, "cert", "md5", lbId, "other.pem", "--json"]);
    assert.equal(gone.code, EXIT.SERVER);
    const err = JSON.parse(gone.stderr).error;
    assert.equal(err.code, "not_found");
    assert.equal(err.category, "server");
    assert.equal(err.procedure, "amphora.v1.CertificateService/GetCertificateMd5");

    // Traffic, then one stats snapshot.
    for (let i = 0; i < 5; i++) await httpGet(port);
    r = ok(await cli([...A, "stats", "--lb", lbId, "--json"]), "stats --json");
    const lbStats = json(r).load_balancers.find((l: any) => l.lb_id === lbId);
    assert.equal(lbStats.listeners[0].listener_id, listenerId);
    assert.ok(Number(lbStats.listeners[0].totals.total_sessions) >= 5);
    assert.match(json(r).totals_since, /^\d{4}-\d\d-\d\dT/, "when the agent began counting the totals");
    r = ok(await cli([...A, "stats", "--lb", lbId]), "stats");
    assert.match(r.stdout, /^totals since \S+ \(.* ago, when the agent began counting\)\n/);
    assert.match(r.stdout, new RegExp(`${listenerId} +${lbId} +OPEN`));
    assert.match(r.stdout, /MEMBER +POOL +STATUS/);

    // watch, not on a terminal: plain lines per update, --count ends it.
    const traffic = setInterval(() => void httpGet(port).catch(() => {}), 50);
    try {
      r = ok(await cli([...A, "watch", "--lb", lbId, "--interval", "200", "--count", "3"]), "watch");
    } finally {
      clearInterval(traffic);
    }
    const lines = r.stdout.trim().split("\n");
    const listenerLines = lines.filter((l) => l.includes(` listener ${listenerId} `));
    assert.equal(listenerLines.length, 3, r.stdout);
    assert.doesNotMatch(r.stdout, /\x1b\[/, "no escape sequences when stdout is not a terminal");
    assert.match(listenerLines[0]!, /status=OPEN .*sess_rate=- /, "no rate before a second snapshot");
    assert.match(listenerLines[2]!, /sess_rate=\d+\.\d/, "rates from consecutive snapshots");
    assert.ok(lines.some((l) => / member .* status=(NO_CHECK|UP) /.test(l)));
    r = ok(await cli([...A, "watch", "--lb", lbId, "--interval", "200", "--count", "2", "--json"]), "watch --json");
    const updates = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(updates.length, 2);
    assert.equal(updates[0].load_balancers[0].lb_id, lbId);
    const multi = await cli([...A, "--agent", downUrl, "watch"]);
    assert.equal(multi.code, EXIT.USAGE);

    r = ok(await cli([...A, "lb", "stop", lbId, "--stop-timeout", "1000"]), "lb stop");
    await assert.rejects(httpGet(port, "/", "127.0.0.1", 1000));

    // apply: certificate (unchanged, so skipped), config, start (it was stopped), wait.
    r = ok(await cli([...A, "lb", "apply", lbId, "--config", cfgFile, "--pem", pemFile, "--wait", "--json"]), "lb apply");
    const applied = json(r);
    assert.equal(applied.action, "start");
    assert.deepEqual(applied.certificates.map((c: any) => [c.filename, c.uploaded]), [["www.pem", false]]);
    assert.equal(applied.listeners[0].status, "ACTIVE");
    r = ok(await cli([...A, "lb", "apply", lbId, "--config", cfgFile]), "lb apply again");
    assert.match(r.stdout, /haproxy reloaded/);
    assert.equal((await httpGet(port)).body, "cli-backend");

    r = ok(await cli([...A, "lb", "delete", lbId, "--json"]), "lb delete");
    assert.equal(json(r).message, "OK");
    r = await cli([...A, "lb", "status", lbId]);
    assert.equal(r.code, EXIT.SERVER);
    assert.match(r.stderr, /error: lb status failed: .*\[not_found\]/);
    noStack(r.stderr);
  });

  test("network commands in the test namespace: plug vip, plug network, interface, interface rules", async () => {
    let r = ok(await cli([...N, "plug", "vip", "192.0.2.10", "--subnet", "192.0.2.0/24", "--gateway", "192.0.2.1", "--mac", VIP_MAC, "--vrrp-ip", "192.0.2.11", "--json"]), "plug vip");
    assert.equal(json(r).message, "OK");
    const addrs = await ipv4Of(topo, ns, "eth1");
    assert.ok(addrs.includes("192.0.2.10/24") && addrs.includes("192.0.2.11/24"), `VIP and VRRP address on eth1: ${addrs.join(", ")}`);
    const body = join(work, "plug-network.json");
    writeFileSync(body, JSON.stringify({ mac_address: MEMBER_MAC, fixed_ips: [{ ip_address: "198.51.100.20", subnet_cidr: "198.51.100.0/24", host_routes: [] }] }));
    r = ok(await cli([...N, "plug", "network", "--from", body]), "plug network");
    assert.match(r.stdout, /^OK/);
    assert.deepEqual(await ipv4Of(topo, ns, "eth2"), ["198.51.100.20/24"]);
    r = ok(await cli([...N, "interface", "198.51.100.20"]), "interface");
    assert.equal(r.stdout, "eth2\n");
    const rules = join(work, "rules.json");
    writeFileSync(rules, JSON.stringify([{ protocol: "TCP", cidr: "198.51.100.0/24", port: 80 }]));
    r = ok(await cli([...N, "interface", "rules", "198.51.100.20", rules, "--json"]), "interface rules");
    assert.equal(json(r).message, "OK");

    // Bad input is caught before anything is sent, or by the agent with its message.
    r = await cli([...N, "plug", "network", "--fixed-ip", "198.51.100.21"]);
    assert.equal(r.code, EXIT.USAGE);
    r = await cli([...N, "plug", "vip", "192.0.2.10", "--subnet", "192.0.2.0/24", "--mac", "02:a5:00:00:0c:99"]);
    assert.equal(r.code, EXIT.SERVER);
    assert.match(r.stderr, /plug vip failed: No suitable network interface found \[not_found\]/);
    r = await cli([...N, "interface", "not-an-ip"]);
    assert.equal(r.code, EXIT.SERVER);
    assert.match(r.stderr, /\[invalid_argument\]/);
  });

  test("keepalived: vrrp put/start/reload/stop, udp put/get", async () => {
    const conf = join(work, "keepalived.conf");
    writeFileSync(conf, vrrpConfig({ routerId: "amt_cli", state: "MASTER", priority: 100, iface: "eth1", src: "192.0.2.11", peer: "192.0.2.12", vips: ["192.0.2.30/32"] }));
    ok(await cli([...N, "vrrp", "put", conf]), "vrrp put");
    let r = ok(await cli([...N, "vrrp", "start", "--json"]), "vrrp start");
    assert.equal(json(r).details, "keepalived started");
    ok(await cli([...N, "vrrp", "reload"]), "vrrp reload");
    r = ok(await cli([...N, "vrrp", "status", "--json"]), "vrrp status");
    assert.equal(json(r).running, true);
    assert.deepEqual(json(r).vips, ["192.0.2.30"]);
    r = ok(await cli([...N, "vrrp", "stop"]), "vrrp stop");
    assert.match(r.stdout, /keepalived stopped/);
    r = ok(await cli([...N, "vrrp", "status"]), "vrrp status human");
    assert.match(r.stdout, /role: +STOPPED/);
    const bad = join(work, "bad-keepalived.conf");
    writeFileSync(bad, "vrrp_instance {\n");
    r = await cli([...N, "vrrp", "put", bad]);
    assert.equal(r.code, EXIT.SERVER);
    assert.match(r.stderr, /error: vrrp put failed/);

    const listenerId = randomUUID();
    const lvs = join(work, "udp.conf");
    const lvsText = "virtual_server 192.0.2.10 53 {\n  lb_algo rr\n  lb_kind NAT\n  protocol UDP\n  real_server 198.51.100.30 53 {\n    weight 1\n  }\n}\n";
    writeFileSync(lvs, lvsText);
    r = ok(await cli([...N, "udp", "put", listenerId, lvs, "--json"]), "udp put");
    assert.equal(json(r).message, "OK");
    r = ok(await cli([...N, "udp", "get", listenerId]), "udp get");
    assert.equal(r.stdout, lvsText);
  });

  test("agent cert and agent config", async () => {
    // Rotate to the same bundle: accepted, and the agent keeps answering.
    const bundle = join(lbAgent.stateDir, "pki", "server-bundle.pem");
    let r = ok(await cli([...A, "agent", "cert", bundle, "--json"]), "agent cert");
    assert.equal(json(r).message, "OK");
    const notPem = join(work, "not.pem");
    writeFileSync(notPem, "hello\n");
    r = await cli([...A, "agent", "cert", notPem]);
    assert.equal(r.code, EXIT.SERVER);
    const ini = join(work, "agent.conf");
    writeFileSync(ini, `[amphora_agent]\namphora_id = ${lbAgent.config.amphoraId}\nagent_request_read_timeout = 120\n[health_manager]\nheartbeat_interval = 7\n`);
    r = ok(await cli([...A, "agent", "config", ini]), "agent config");
    assert.match(r.stdout, /^OK/);
    ok(await cli([...A, "info"]), "still answering");
  });

  test("fan-out: three agents, one down: two results and one error, exit 5; errors say what to do", async () => {
    // A second agent that serves lbAgent's certificate and trusts its CA, so
    // one set of client credentials works for both.
    const pki = join(lbAgent.stateDir, "pki");
    const twin = await startTestAgent({ overrides: { serverCaFile: join(pki, "ca.pem"), serverCertFile: join(pki, "server-bundle.pem") } });
    try {
      const three = ["--agent", lbAgent.url, "--agent", downUrl, "--agent", twin.url, "--dev-state", lbAgent.stateDir];
      const r = await cli([...three, "info", "--json"]);
      assert.equal(r.code, EXIT.PARTIAL, r.stderr);
      const results = json(r);
      assert.deepEqual(results.map((x: any) => [x.agent, x.ok]), [[lbAgent.url, true], [downUrl, false], [twin.url, true]]);
      assert.equal(results[0].result.amphora_id, lbAgent.config.amphoraId);
      assert.equal(results[2].result.amphora_id, twin.config.amphoraId);
      assert.equal(results[1].error.category, "connection");
      assert.match(results[1].error.hint, new RegExp(`is the agent running at ${downUrl.replace(/[.]/g, "\\.")}`));

      const h = await cli([...three, "info"]);
      assert.equal(h.code, EXIT.PARTIAL);
      assert.match(h.stdout, new RegExp(`== ${lbAgent.url.replace(/[.]/g, "\\.")} ok`));
      assert.match(h.stdout, /FAILED\nerror: info failed: connect ECONNREFUSED/);
      noStack(h.stdout + h.stderr);

      const all = await cli(["--agent", lbAgent.url, "--agent", twin.url, "--dev-state", lbAgent.stateDir, "listeners", "--json"]);
      assert.equal(all.code, EXIT.OK);
    } finally {
      await twin.cleanup();
    }

    // A single agent down: exit 3 and the hint on stderr.
    const down = await cli(["--agent", downUrl, "--dev-state", lbAgent.stateDir, "info", "--timeout", "2000"]);
    assert.equal(down.code, EXIT.CONNECTION);
    assert.match(down.stderr, new RegExp(`hint: connection refused: is the agent running at ${downUrl.replace(/[.]/g, "\\.")}\\?`));
    noStack(down.stderr);
    // Credentials of another agent's CA: rejected, and the hint says which flags to check.
    const rejected = await cli(["--agent", netAgent.url, "--dev-state", lbAgent.stateDir, "--ca", join(netAgent.stateDir, "pki", "ca.pem"), "info"]);
    assert.equal(rejected.code, EXIT.CONNECTION);
    assert.match(rejected.stderr, /client certificate rejected by the agent: check --ca\/--cert/);
    noStack(rejected.stderr);
    // Not trusting the agent's server certificate is a different hint.
    const untrusted = await cli(["--agent", netAgent.url, "--dev-state", lbAgent.stateDir, "info"]);
    assert.equal(untrusted.code, EXIT.CONNECTION);
    assert.match(untrusted.stderr, /hint: the agent's server certificate is not signed by --ca/);
  });
  test("lb wait: an unknown load balancer fails at once (not_found); a config naming no listener says so; lb apply --wait shows what it did", async () => {
    // A generous wait: the old behaviour waited all of it, then timed out.
    const unknown = randomUUID();
    let r = await cli([...A, "lb", "wait", unknown, "--wait-timeout", "5000", "--json"]);
    assert.equal(r.code, EXIT.SERVER, r.stderr);
    const err = JSON.parse(r.stderr).error;
    assert.equal(err.code, "not_found");
    assert.match(err.message, new RegExp(`load balancer ${unknown} is not on this amphora`));
    assert.match(err.hint, /amphora lb list/);

    // Only a `listen` section: no frontend, so no listener to wait for.
    const lbId = randomUUID();
    const port = await freePort();
    const cfg = octaviaConfig({ lbId, runDir, listeners: [] }).text +
      `listen web\n    bind 127.0.0.1:${port}\n    mode http\n    http-request return status 200 content-type text/plain string "hi"\n`;
    const cfgFile = join(work, "listen-only.cfg");
    writeFileSync(cfgFile, cfg);
    try {
      r = await cli([...A, "lb", "apply", lbId, "--config", cfgFile, "--wait", "--wait-timeout", "5000"]);
      assert.equal(r.code, EXIT.SERVER, r.stderr);
      assert.match(r.stdout, /^config stored: md5 [0-9a-f]{32}, version 1\nhaproxy started\n$/, "the apply lines it completed");
      assert.match(r.stderr, /error: lb apply failed: the stored config of load balancer \S+ names no listener \(it has no frontend sections\): nothing to wait for \[failed_precondition\]/);
      assert.match(r.stderr, /hint: listeners are the config's frontends, named by listener id/);
      assert.equal((await httpGet(port)).body, "hi", "the apply did go through");
      r = await cli([...A, "lb", "apply", lbId, "--config", cfgFile, "--wait", "--json"]);
      assert.equal(r.code, EXIT.SERVER);
      assert.equal(json(r).action, "reload", "--json: the apply's result on stdout");
      assert.equal(JSON.parse(r.stderr).error.code, "failed_precondition");
    } finally {
      await cli([...A, "lb", "delete", lbId]);
    }
  });

  test("lb list: one row per load balancer when the last action holds haproxy's output; ages in human output, raw values in --json", async () => {
    const lbId = randomUUID();
    const port = await freePort();
    // Someone else holds the port: haproxy's start fails with its ALERT lines.
    const squatter = createServer().listen(port, "127.0.0.1");
    await once(squatter, "listening");
    try {
      const cfgFile = join(work, "squatted.cfg");
      writeFileSync(cfgFile, octaviaConfig({ lbId, runDir, listeners: [{ port, returnBody: "x", members: [] }] }).text);
      ok(await cli([...A, "config", "put", lbId, cfgFile]), "config put");
      const start = await cli([...A, "lb", "start", lbId]);
      assert.equal(start.code, EXIT.SERVER, start.stdout);
      const raw = json(ok(await cli([...A, "lb", "list", "--json"]), "lb list --json")).load_balancers.find((s: any) => s.lb_id === lbId);
      assert.match(raw.last_action, /\n/, "haproxy's multi-line output is in the last action");
      const human = ok(await cli([...A, "lb", "list"]), "lb list").stdout;
      const lines = human.trimEnd().split("\n");
      const header = lines[0]!;
      assert.match(header, /RESTARTS +LAST_EXIT +LAST_ACTION$/);
      for (const l of lines.slice(1)) assert.match(l, /^[0-9a-f-]{36} /, `every row starts with a load balancer id: ${JSON.stringify(l)}`);
      assert.match(lines.find((l) => l.startsWith(lbId))!, /\(\+\d+ lines\)$/, "the row says there was more");
      const status = ok(await cli([...A, "lb", "status", lbId]), "lb status").stdout;
      assert.match(status, /finished_at_ms: +\d[^\n]* ago\n/, "times as ages");
      assert.match(status, /duration_ms: +\d+(\.\d)? (ms|s)\n/, "durations with units");
      const st = json(ok(await cli([...A, "lb", "status", lbId, "--json"]), "lb status --json"));
      assert.match(st.status.recent_actions[0].finished_at_ms, /^\d{13}$/, "--json keeps epoch milliseconds");
    } finally {
      squatter.close();
      await cli([...A, "lb", "delete", lbId]);
    }
  });

  test("--verbose traces each request on stderr (method, URL, protocol, outcome, duration), never credentials", async () => {
    const r = ok(await cli([...A, "info", "--verbose", "--json", "--protocol", "grpc"]), "info --verbose");
    assert.equal(json(r).amphora_id, lbAgent.config.amphoraId, "stdout is unchanged");
    assert.match(r.stderr, new RegExp(`^> POST ${lbAgent.url.replace(/[.]/g, "\\.")}/amphora\\.v1\\.SystemService/GetInfo \\(grpc, unary\\)\n< ok \\d+ ms\n$`));
    const down = await cli(["--agent", downUrl, "--dev-state", lbAgent.stateDir, "-v", "lb", "status", randomUUID(), "--timeout", "3000"]);
    assert.equal(down.code, EXIT.CONNECTION);
    assert.match(down.stderr, /> POST \S+\/amphora\.v1\.LoadBalancerService\/GetLoadBalancerStatus \(connect, unary\)\n< unavailable \d+ ms: /, "a failed attempt says how");
    for (const s of [r.stderr, down.stderr]) assert.doesNotMatch(s, /PRIVATE KEY|BEGIN CERTIFICATE/);
  });
});
