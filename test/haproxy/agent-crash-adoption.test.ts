// Faults: the agent killed with -9 under traffic (haproxy keeps serving, a
// new agent re-adopts it), haproxy dying while the agent is down (stale pid
// file and socket cleaned), a crash in the middle of an upload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { connect as tlsConnect } from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startTestAgent } from "../support/agent.js";
import { freePort, startBackend, octaviaConfig, httpGet, killHaproxiesUnder, processRuns } from "../support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { LoadBalancerManager } from "../../src/haproxy/manager.js";
import { md5 } from "../../src/haproxy/meta.js";
import { writeFileAtomic } from "../../src/system/fs-atomic.js";
import { managerDirs } from "../support/lb-test.js";

/** Starts the real agent program (`src/agent/main.ts --dev`) as a separate process. */
async function spawnAgent(stateDir: string, port: number): Promise<ChildProcess> {
  // The config policy (on by default) confines stats sockets to the state
  // dir; these tests keep theirs in a temp folder of their own. --dev reads
  // the stored agent config from the state dir.
  const stored = join(stateDir, "amphora-agent.conf");
  if (!existsSync(stored)) writeFileSync(stored, "[amphora_agent]\nconfig_policy = off\n");
  const child = spawn(process.execPath, ["--import", "tsx", "src/agent/main.ts", "--dev", "--state-dir", stateDir, "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, AMPHORA_LOG_LEVEL: "warn" },
  });
  let stderr = "";
  child.stderr!.on("data", (c) => (stderr += c));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${stderr}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (up) return child;
    await sleep(50);
  }
  child.kill("SIGKILL");
  throw new Error(`agent did not come up: ${stderr}`);
}

test("kill -9 of the agent under traffic: haproxy keeps serving, a restarted agent re-adopts it, reports ACTIVE and reloads it", async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-surv-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  const a = await startBackend("a");
  const b = await startBackend("b");
  let child: ChildProcess | undefined;
  let second: Awaited<ReturnType<typeof startTestAgent>> | undefined;
  t.after(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    // The agent first (it restarts a haproxy that dies while it runs), then haproxy.
    await second?.cleanup();
    await killHaproxiesUnder(stateDir);
    await Promise.all([a.close(), b.close()]);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  const agentPort = await freePort();
  child = await spawnAgent(stateDir, agentPort);
  const pki = join(stateDir, "pki");
  const nodeOptions = { ca: readFileSync(join(pki, "ca.pem")), cert: readFileSync(join(pki, "client.pem")), key: readFileSync(join(pki, "client-key.pem")) };
  const lb1 = createClient(LoadBalancerService, createConnectTransport({ baseUrl: `https://127.0.0.1:${agentPort}`, httpVersion: "2", nodeOptions }));
  const amphoraId = readFileSync(join(stateDir, "amphora-id"), "utf8").trim();
  const lbId = randomUUID();
  const port = await freePort();
  const v1 = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [{ port: a.port }] }] });
  await lb1.putConfig({ amphoraId, lbId, config: v1.text });
  await lb1.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const masterPid = (await lb1.getLoadBalancerStatus({ lbId })).status!.masterPid;

  let stop = false;
  // Ends the traffic loops also when an assertion or an RPC below fails.
  t.after(() => { stop = true; });
  let ok = 0;
  const failures: string[] = [];
  const traffic = (async () => {
    while (!stop) {
      try {
        const r = await httpGet(port);
        if (r.body === "a" || r.body === "b") ok++;
        else failures.push(r.body);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
  })();

  await sleep(100);
  child.kill("SIGKILL");
  await new Promise((r) => child!.once("exit", r));
  const okAtKill = ok;
  // Waits for requests answered after the kill (a fixed 300 ms could pass
  // without one on a busy machine; failures are collected either way).
  for (const until = Date.now() + 5000; ok <= okAtKill + 3 && Date.now() < until;) await sleep(20);
  assert.ok(ok > okAtKill, "haproxy serves while no agent runs");
  assert.ok(processRuns(masterPid));

  // A new agent on the same state directory (in-process this time).
  second = await startTestAgent({ stateDir });
  const lb2 = second.client(LoadBalancerService);
  const st = (await lb2.getLoadBalancerStatus({ lbId })).status!;
  assert.equal(st.state, "RUNNING");
  assert.equal(st.masterPid, masterPid, "adopted, not restarted");
  assert.equal(st.configVersion, 1n);
  assert.deepEqual((await lb2.listListeners({})).listeners.map((l) => l.status), ["ACTIVE"]);
  assert.deepEqual(second.ctx.lbs.get(lbId), { lbId, masterSocket: join(stateDir, "lb", lbId, "master.sock"), running: true, listenerIds: [v1.listeners[0]!.id] });

  const v2 = octaviaConfig({ lbId, runDir, listeners: [{ ...v1.listeners[0]!, members: [{ port: b.port }] }] });
  await lb2.putConfig({ amphoraId, lbId, config: v2.text, expectedVersion: 1n });
  await lb2.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
  assert.equal((await httpGet(port)).body, "b");
  stop = true;
  await traffic;
  assert.deepEqual(failures, [], "no failed request at any point");
  assert.ok(ok > 10, `traffic flowed (${ok} requests)`);
});

test("haproxy dead while the agent was down (reboot): the new agent starts the wanted-running load balancer again; a stopped one stays stopped", async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-stale-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  let agent = await startTestAgent({ stateDir });
  t.after(async () => {
    await agent.cleanup();
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  const lbId = randomUUID();
  const port = await freePort();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "up" }] });
  const stoppedId = randomUUID();
  const stoppedPort = await freePort();
  const stoppedCfg = octaviaConfig({ lbId: stoppedId, runDir, listeners: [{ port: stoppedPort, members: [], returnBody: "no" }] });
  let lb = agent.client(LoadBalancerService);
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId: stoppedId, config: stoppedCfg.text });
  await lb.controlLoadBalancer({ lbId: stoppedId, action: LoadBalancerAction.START });
  await lb.controlLoadBalancer({ lbId: stoppedId, action: LoadBalancerAction.STOP });
  const masterPid = (await lb.getLoadBalancerStatus({ lbId })).status!.masterPid;
  await agent.cleanup(); // the agent stops; haproxy does not
  assert.equal((await httpGet(port)).body, "up");
  const killed = await killHaproxiesUnder(stateDir);
  assert.ok(killed.includes(masterPid));
  await assert.rejects(httpGet(port), "down while no agent runs");
  const dir = join(stateDir, "lb", lbId);
  assert.ok(existsSync(join(dir, "haproxy.pid")) && existsSync(join(dir, "master.sock")), "haproxy leaves them behind");

  // No RPC after this: the new agent brings it back on its own.
  agent = await startTestAgent({ stateDir });
  lb = agent.client(LoadBalancerService);
  assert.equal((await httpGet(port)).body, "up");
  const st = (await lb.getLoadBalancerStatus({ lbId })).status!;
  assert.equal(st.state, "RUNNING");
  assert.notEqual(st.masterPid, masterPid, "a new master");
  assert.match(st.recentActions[0]!.details, /started at agent start \(wanted running, was not running\)/);
  assert.deepEqual((await lb.listListeners({})).listeners.map((l) => [l.uuid, l.status]).sort(), [
    [cfg.listeners[0]!.id, "ACTIVE"], [stoppedCfg.listeners[0]!.id, "STOPPED"],
  ].sort());
  assert.equal((await lb.getLoadBalancerStatus({ lbId: stoppedId })).status!.state, "STOPPED");
  await assert.rejects(httpGet(stoppedPort), "the stopped load balancer stays stopped");
});

test("a crash mid-upload leaves the old or the new complete config; metadata is repaired at start", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  const lbId = randomUUID();
  const c1 = octaviaConfig({ lbId, runDir, listeners: [{ port: 1, members: [], returnBody: "one" }] }).text;
  const c2 = c1.replace('"one"', '"two"');
  let m = await open();
  await m.putConfig(randomUUID(), lbId, c1);
  m.close();
  const dir = join(stateDir, "lb", lbId);
  // Crash 1: inside writeFileAtomic, after the temp file, before the rename.
  writeFileSync(join(dir, ".haproxy.cfg.abcdef.tmp"), c2.slice(0, 40));
  // Crash 2: a candidate left in the scratch folder during validation.
  writeFileSync(join(stateDir, "tmp", "candidate-0011.cfg"), c2);
  m = await open();
  let got = await m.getConfig(lbId);
  assert.equal(got.config, c1, "old complete config");
  assert.equal(got.version, 1);
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith(".tmp")), [], "partial temp file removed");
  assert.deepEqual(readdirSync(join(stateDir, "tmp")), []);
  m.close();
  // Crash 3: after the config rename, before the metadata was written.
  await writeFileAtomic(join(dir, "haproxy.cfg"), c2, 0o600);
  m = await open();
  got = await m.getConfig(lbId);
  assert.equal(got.config, c2, "new complete config");
  assert.equal(got.md5, md5(c2));
  assert.equal(got.version, 2, "the new content gets a new version");
  assert.equal((await m.status(lbId)).configMd5, md5(c2));
  m.close();
  // Crash 4: the metadata of a newer upload landed, its config did not.
  const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8"));
  writeFileSync(join(dir, "meta.json"), JSON.stringify({ ...meta, version: 3, md5: md5("never stored") }));
  m = await open();
  got = await m.getConfig(lbId);
  assert.equal(got.config, c2, "the complete config on disk");
  assert.equal(got.version, 4, "above every version handed out");
  m.close();
});

test("a stale pid file naming an unrelated live process is not adopted and that process is never signalled", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  const lbId = randomUUID();
  let m = await open();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port: 1, members: [], returnBody: "x" }] }).text);
  m.close();
  const dir = join(stateDir, "lb", lbId);
  // This very test process: alive, but not haproxy.
  writeFileSync(join(dir, "haproxy.pid"), `${process.pid}\n`);
  writeFileSync(join(dir, "master.sock"), "");
  m = await open();
  t.after(() => m.close());
  assert.equal(m.get(lbId)!.running, false);
  assert.equal(existsSync(join(dir, "haproxy.pid")), false);
  assert.equal(existsSync(join(dir, "master.sock")), false);
  writeFileSync(join(dir, "haproxy.pid"), `${process.pid}\n`);
  assert.equal((await m.control(lbId, "stop")).details, "haproxy was not running");
  await m.delete(lbId);
  assert.equal(existsSync(dir), false);
  assert.ok(processRuns(process.pid));
});

test("metadata lost entirely: the config is adopted with a version above any handed out (the clock floor) and started with the agent's own peer name", async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-meta-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  t.after(async () => {
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  const amphoraId = randomUUID();
  const open = () => LoadBalancerManager.open({ stateDir, certDir: join(stateDir, "certs"), settings: () => ({ haproxyCmd: "/usr/sbin/haproxy", netns: "", amphoraId }), watchIntervalMs: 0 });
  const lbId = randomUUID();
  const port = await freePort();
  const { peerName } = await import("../../src/haproxy/peer-name.js");
  const { masterCommand } = await import("../../src/haproxy/master-cli.js");
  const cfg = octaviaConfig({ lbId, runDir, peer: { name: peerName(amphoraId), port: await freePort() }, listeners: [{ port, members: [], returnBody: "m" }] });
  let m = await open();
  await m.putConfig(amphoraId, lbId, cfg.text);
  await m.close();
  rmSync(join(stateDir, "lb", lbId, "meta.json"));
  m = await open();
  t.after(() => m.close());
  const before = Date.now();
  assert.ok((await m.getConfig(lbId)).version > 1 && (await m.getConfig(lbId)).version <= before, "never back to 1");
  await m.control(lbId, "start");
  assert.equal((await httpGet(port)).body, "m");
  assert.match(await masterCommand(join(stateDir, "lb", lbId, "master.sock"), "@1 show peers"), new RegExp(`${lbId.replace(/-/g, "")}_peers`));
});

test("at agent start a missing or empty pid file next to a master socket (a master re-executing for a reload) is no death: that master is adopted, no second haproxy", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  let m = await open();
  const lbId = randomUUID();
  const port = await freePort();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "one" }] }).text);
  await m.control(lbId, "start");
  const masterPid = (await m.status(lbId)).masterPid;
  await m.close();
  const pidFile = join(stateDir, "lb", lbId, "haproxy.pid");
  // A re-executing master removes and rewrites its pid file for a few ms:
  // that window cannot be hit on purpose, so it is held open here.
  // "late": the file comes back while the new manager waits (the re-exec ends);
  // "empty" and "missing": it never does (found through /proc).
  for (const how of ["late", "empty", "missing"]) {
    if (how === "empty") writeFileSync(pidFile, "");
    else rmSync(pidFile);
    const back = how === "late" ? sleep(300).then(() => writeFileSync(pidFile, `${masterPid}\n`)) : undefined;
    m = await open();
    await back;
    const st = await m.status(lbId);
    assert.equal(st.state, "RUNNING", how);
    assert.equal(st.masterPid, masterPid, how);
    assert.deepEqual(await m.resume(), { started: [], failed: [] }, `${how}: nothing started`);
    assert.equal(readFileSync(pidFile, "utf8").trim(), String(masterPid), how);
    assert.equal((await m.control(lbId, "reload")).message, "OK", `${how}: the adopted master is controlled`);
    await m.close();
  }
  assert.equal((await httpGet(port)).body, "one");
  assert.ok(processRuns(masterPid));
});
