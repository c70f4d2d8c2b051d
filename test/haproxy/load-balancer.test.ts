// LoadBalancerService end to end: a real agent over mTLS driving real
// haproxy in front of real loopback backends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { freePort, startBackend, octaviaConfig, httpGet, waitForBody, processRuns } from "../support/haproxy.js";
import { ApplyMethod } from "../../src/gen/amphora/v1/events_pb.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { agentWithRunDir, rpcError } from "../support/lb-test.js";

const setup = agentWithRunDir;

test("upload, start, traffic, reload with a changed config, listeners, status, delete twice", async (t) => {
  const { agent, runDir } = await setup(t);
  const a = await startBackend("backend-a");
  const b = await startBackend("backend-b");
  t.after(() => Promise.all([a.close(), b.close()]));
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  const port = await freePort();
  const v1 = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [{ port: a.port }] }] });
  const listenerId = v1.listeners[0]!.id;

  const put = await lb.putConfig({ amphoraId, lbId, config: v1.text });
  assert.equal(put.version, 1n);
  assert.match(put.md5, /^[0-9a-f]{32}$/);
  // Stored, not yet running.
  let listeners = await lb.listListeners({});
  assert.deepEqual(listeners.listeners.map((l) => [l.uuid, l.type, l.status, l.lbId]), [[listenerId, "HTTP", "STOPPED", lbId]]);

  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  assert.equal((await httpGet(port)).body, "backend-a");
  listeners = await lb.listListeners({});
  assert.equal(listeners.listeners[0]!.status, "ACTIVE");
  const dir = join(agent.stateDir, "lb", lbId);
  assert.ok(existsSync(join(dir, "master.sock")));
  assert.equal(statSync(join(dir, "haproxy.cfg")).mode & 0o777, 0o600);

  const got = await lb.getConfig({ lbId });
  assert.equal(got.config, v1.text);
  assert.equal(got.md5, put.md5);

  // Same listener, now pointing at backend b.
  const v2 = octaviaConfig({ lbId, runDir, listeners: [{ ...v1.listeners[0]!, members: [{ port: b.port }] }] });
  const put2 = await lb.putConfig({ amphoraId, lbId, config: v2.text, expectedVersion: 1n });
  assert.equal(put2.version, 2n);
  assert.equal((await httpGet(port)).body, "backend-a", "upload alone does not reload");
  const r = await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD, expectedMd5: put2.md5 });
  assert.equal(r.version, 2n);
  assert.equal((await httpGet(port)).body, "backend-b");

  const st = (await lb.getLoadBalancerStatus({ lbId })).status!;
  assert.equal(st.state, "RUNNING");
  assert.equal(st.configVersion, 2n);
  assert.equal(st.servedVersion, 2n);
  // Only the member changed: applied on the running worker, no reload (issue 13).
  assert.equal(st.reloads, 0);
  assert.equal(st.lastApplyMethod, ApplyMethod.RUNTIME);
  assert.equal(st.failedReloads, 0);
  assert.deepEqual(st.listenerIds, [listenerId]);
  const masterPid = st.masterPid;
  const all = (await lb.listLoadBalancers({})).loadBalancers;
  assert.deepEqual(all.map((s) => [s.lbId, s.state, s.configVersion, s.masterPid]), [[lbId, "RUNNING", 2n, masterPid]]);
  assert.ok(processRuns(masterPid));

  const details = await agent.client(SystemService).getDetails({});
  assert.equal(details.haproxyCount, 1);
  assert.deepEqual(details.listeners, [listenerId]);

  await lb.deleteLoadBalancer({ lbId });
  assert.equal(processRuns(masterPid), false, "delete stops haproxy");
  assert.equal(existsSync(dir), false);
  await assert.rejects(httpGet(port), "nothing listens any more");
  await lb.deleteLoadBalancer({ lbId }); // idempotent
  const e = await rpcError(lb.getConfig({ lbId }));
  assert.equal(e.code, Code.NotFound);
  assert.deepEqual((await lb.listListeners({})).listeners, []);
});

test("invalid config: haproxy's ALERT lines with a meaningful file name, old config still stored and served", async (t) => {
  const { agent, runDir } = await setup(t);
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  const port = await freePort();
  const good = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "good" }] });
  await lb.putConfig({ amphoraId, lbId, config: good.text });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  await waitForBody(port, "good");

  const bad = good.text.replace("    maxconn 4096\n", "    maxconn 4096\n    frobnicate yes\n");
  const e = await rpcError(lb.putConfig({ amphoraId, lbId, config: bad }));
  assert.equal(e.code, Code.InvalidArgument);
  assert.equal(e.rawMessage, "Invalid request", "the message Octavia controllers know");
  const info = e.findDetails(ErrorInfoSchema)[0]!;
  assert.equal(info.reason, "CONFIG_INVALID");
  assert.match(info.details, /\[ALERT\]/);
  assert.match(info.details, /frobnicate/);
  assert.match(info.details, new RegExp(`haproxy\\.cfg of load balancer ${lbId}:\\d+`));
  assert.doesNotMatch(info.details, /candidate-|\/tmp\//, "no temp path leaks");
  const got = await lb.getConfig({ lbId });
  assert.equal(got.config, good.text);
  assert.equal(got.version, 1n);
  assert.equal((await httpGet(port)).body, "good");
  // A config for an unknown load balancer that fails leaves no trace.
  const other = randomUUID();
  await rpcError(lb.putConfig({ amphoraId, lbId: other, config: "global\n    frobnicate\n" }));
  assert.equal(existsSync(join(agent.stateDir, "lb", other)), false);
  assert.equal((await rpcError(lb.getConfig({ lbId: other }))).code, Code.NotFound);
});

test("optimistic concurrency: stale version or md5 is ABORTED and changes nothing", async (t) => {
  const { agent, runDir } = await setup(t);
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  const port = await freePort();
  const c1 = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "one" }] }).text;
  const c2 = c1.replace('"one"', '"two"');
  const c3 = c1.replace('"one"', '"three"');
  // 0 = "nothing stored yet".
  const p1 = await lb.putConfig({ amphoraId, lbId, config: c1, expectedVersion: 0n });
  assert.equal((await rpcError(lb.putConfig({ amphoraId, lbId, config: c2, expectedVersion: 0n }))).code, Code.Aborted);
  const p2 = await lb.putConfig({ amphoraId, lbId, config: c2, expectedVersion: 1n, expectedMd5: p1.md5 });
  const stale = await rpcError(lb.putConfig({ amphoraId, lbId, config: c3, expectedMd5: p1.md5 }));
  assert.equal(stale.code, Code.Aborted);
  assert.equal(stale.findDetails(ErrorInfoSchema)[0]!.reason, "MD5_MISMATCH");
  assert.equal((await rpcError(lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START, expectedVersion: 1n }))).code, Code.Aborted);
  const got = await lb.getConfig({ lbId });
  assert.equal(got.config, c2);
  assert.equal(got.version, 2n);
  assert.equal(got.md5, p2.md5);
  // Re-uploading identical text is a no-op (safe retries): same version.
  assert.equal((await lb.putConfig({ amphoraId, lbId, config: c2 })).version, 2n);
  assert.equal((await rpcError(lb.controlLoadBalancer({ lbId: randomUUID(), action: LoadBalancerAction.START }))).code, Code.NotFound);
  assert.equal((await rpcError(lb.controlLoadBalancer({ lbId, action: 7 as LoadBalancerAction }))).code, Code.InvalidArgument);
});

test("concurrent uploads expecting the same version: exactly one wins, the other is ABORTED", async (t) => {
  const { agent, runDir } = await setup(t);
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  const base = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "base" }] }).text;
  await lb.putConfig({ amphoraId, lbId, config: base });
  const attempts = ["x", "y", "z"].map((b) => lb.putConfig({ amphoraId, lbId, config: base.replace('"base"', `"${b}"`), expectedVersion: 1n }).then(
    (r) => ({ ok: true as const, version: r.version }),
    (e: unknown) => ({ ok: false as const, code: ConnectError.from(e).code }),
  ));
  const results = await Promise.all(attempts);
  assert.equal(results.filter((r) => r.ok).length, 1);
  assert.deepEqual(results.filter((r) => !r.ok).map((r) => !r.ok && r.code), [Code.Aborted, Code.Aborted]);
  assert.equal((await lb.getConfig({ lbId })).version, 2n);
});

test("start that haproxy refuses (port taken): 'Error starting haproxy' with its output, nothing left running", async (t) => {
  const { agent, runDir } = await setup(t);
  const { createServer } = await import("node:net");
  const squatter = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => squatter.once("listening", r));
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));
  const taken = (squatter.address() as { port: number }).port;
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: octaviaConfig({ lbId, runDir, listeners: [{ port: taken, members: [], returnBody: "no" }] }).text });
  const e = await rpcError(lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START }));
  assert.equal(e.code, Code.Internal);
  assert.equal(e.rawMessage, "Error starting haproxy");
  const info = e.findDetails(ErrorInfoSchema)[0]!;
  assert.equal(info.reason, "HAPROXY_START_FAILED");
  assert.match(info.details, /cannot bind socket/);
  assert.doesNotMatch(info.details, new RegExp(agent.stateDir), "file names, not the agent's paths");
  const st = (await lb.getLoadBalancerStatus({ lbId })).status!;
  assert.equal(st.state, "STOPPED");
  assert.equal(st.recentActions[0]!.action, "START");
  assert.equal(st.recentActions[0]!.ok, false);
  assert.equal(existsSync(join(agent.stateDir, "lb", lbId, "haproxy.pid")), false);
  assert.deepEqual((await lb.listListeners({})).listeners.map((l) => l.status), ["STOPPED"]);
});
