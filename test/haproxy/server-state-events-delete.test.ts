// Defects a review found, each on real haproxy: a server-state-file in an
// uploaded config must not let the agent overwrite files outside the load
// balancer's own folder; events fire only once the state is stored and a
// throwing listener cannot fail an action; a delete whose stop fails is a
// 503 that keeps everything; DELETE/GET /1.0/listeners cover UDP listeners.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { masterCommand } from "../../src/haproxy/master-cli.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { KeepalivedService } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { freePort, httpGet, octaviaConfig, startBackend } from "../support/haproxy.js";
import { RestClient } from "../transport/rest/https-client.js";
import { agentWithRunDir, managerDirs, rpcError } from "../support/lb-test.js";

const setup = agentWithRunDir;

test("a server-state-file outside the load balancer's own folder is never written (agent config, other LB, own meta.json)", async (t) => {
  const { agent, runDir } = await setup(t);
  const lb = agent.client(LoadBalancerService);
  const amphoraId = agent.config.amphoraId;
  // Another load balancer whose files must survive.
  const other = randomUUID();
  await lb.putConfig({ amphoraId, lbId: other, config: octaviaConfig({ lbId: other, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "o" }] }).text });
  const agentConf = join(agent.stateDir, "amphora-agent.conf");
  writeFileSync(agentConf, "[amphora_agent]\n# the operator's file\n");
  const victims = [agentConf, join(agent.stateDir, "lb", other, "meta.json"), join(agent.stateDir, "lb", other, "haproxy.cfg")];
  const lbId = randomUUID();
  victims.push(join(agent.stateDir, "lb", lbId, "meta.json"));
  const port = await freePort();
  for (const victim of victims) {
    const before = existsSync(victim) ? readFileSync(victim, "utf8") : undefined;
    const cfg = octaviaConfig({
      lbId, runDir, globalExtra: [`server-state-file ${victim}`], defaultsExtra: ["load-server-state-from-file global"],
      listeners: [{ port, members: [], returnBody: "x" }],
    });
    const put = await lb.putConfig({ amphoraId, lbId, config: cfg.text });
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD, force: true }); // starts it the first time
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD, force: true });
    const after = readFileSync(victim, "utf8");
    assert.doesNotMatch(after, /# be_id/, `${victim} got server states`);
    if (before !== undefined && !victim.endsWith("meta.json")) assert.equal(after, before, victim);
    // The upload said the agent will not save server states there.
    assert.match(put.details, /server-state-file .* (is outside this load balancer's folder|names a file the agent keeps)/, victim);
  }
  assert.equal((await httpGet(port)).body, "x");
  // The agent still starts on its config file.
  assert.match(readFileSync(agentConf, "utf8"), /the operator's file/);
});

for (const where of ["the load balancer's folder", "Octavia's <base_path>/<lb_id>/servers-state"] as const) {
  test(`a server-state-file in ${where} is saved before a reload, restores maintenance, and goes with delete`, async (t) => {
    const { agent, runDir } = await setup(t);
    const be = await startBackend("be");
    t.after(() => be.close());
    const lb = agent.client(LoadBalancerService);
    const lbId = randomUUID();
    const stateFile = where.startsWith("Octavia")
      ? join(agent.stateDir, lbId, "servers-state")
      : join(agent.stateDir, "lb", lbId, "servers-state");
    const cfg = octaviaConfig({
      lbId, runDir, globalExtra: [`server-state-file ${stateFile}`], defaultsExtra: ["load-server-state-from-file global"],
      listeners: [{ port: await freePort(), members: [{ port: be.port }] }],
    });
    const put = await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
    // (haproxy -c may warn that the file does not exist yet; the agent does not object.)
    assert.doesNotMatch(put.details, /will not save server states/);
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    const l = cfg.listeners[0]!;
    const sock = join(agent.stateDir, "lb", lbId, "master.sock");
    await masterCommand(sock, `@1 set server ${l.poolId}:${l.id}/${l.members[0]!.id} state maint`);
    // A real reload of the same config (it would otherwise apply nothing, issue 13).
    agent.ctx.lbs.setRuntimeApply({ enabled: false });
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD, force: true });
    assert.match(readFileSync(stateFile, "utf8"), new RegExp(l.members[0]!.id));
    const row = (await masterCommand(sock, "@1 show stat")).split("\n").find((r) => r.includes(l.members[0]!.id))!;
    assert.match(row, /,MAINT,/);
    await lb.deleteLoadBalancer({ lbId });
    assert.equal(existsSync(stateFile), false, "server state file removed with the load balancer");
  });
}


test("a throwing event listener does not turn a successful start into a failure; others still hear the event", async (t) => {
  const { runDir, open } = managerDirs(t);
  const m = await open();
  const heard: string[] = [];
  m.on("event", (e) => {
    if (e.type === "started") throw new Error("listener bug");
  });
  m.on("event", (e) => heard.push(e.type));
  const lbId = randomUUID();
  const port = await freePort();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "up" }] }).text);
  const r = await m.control(lbId, "start");
  assert.match(r.details, /haproxy started/);
  assert.equal((await m.status(lbId)).state, "RUNNING");
  assert.match((await m.status(lbId)).recentActions[0]!.details, /^started config version 1/);
  assert.deepEqual(heard, ["created", "started"]);
  assert.equal((await httpGet(port)).body, "up");
});

test("`stopped` for a haproxy that died is emitted after its metadata and run files are stored", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  const m = await open();
  const lbId = randomUUID();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "x" }] }).text);
  await m.control(lbId, "start");
  const dir = join(stateDir, "lb", lbId);
  const seen: { lastAction: string; served: unknown; pidFile: boolean }[] = [];
  m.on("event", (e) => {
    if (e.type !== "stopped") return;
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as { lastAction: string; served?: unknown };
    seen.push({ lastAction: meta.lastAction, served: meta.served, pidFile: existsSync(join(dir, "haproxy.pid")) });
  });
  const pid = (await m.status(lbId)).masterPid;
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 300 && existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  // The next action notices (refresh) and then starts it again.
  await m.control(lbId, "start");
  // (The watch is off here; the action noticed the exit and planned a restart its own start then replaced.)
  assert.deepEqual(seen, [{ lastAction: "haproxy exited without a stop request; restarting it in 1 s", served: undefined, pidFile: false }]);
  assert.equal((await m.status(lbId)).restartPending, false);
});

test("DELETE /1.0/listeners/{id} whose haproxy cannot be stopped answers 503 with the reason and keeps the load balancer", async (t) => {
  const { agent, runDir } = await setup(t);
  const rest = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => rest.close());
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const port = await freePort();
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "kept" }] }).text });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const pid = (await lb.getLoadBalancerStatus({ lbId })).status!.masterPid;
  // Simulated: as root the agent can always signal its haproxy, so a master
  // it may not signal (EPERM, e.g. hardened by an LSM) cannot be made here.
  // Only signals to this master are refused; everything else is real.
  const realKill = process.kill;
  process.kill = ((target: number, sig?: string | number) => {
    if (target === pid) throw Object.assign(new Error(`kill EPERM`), { code: "EPERM", errno: -1, syscall: "kill" });
    return realKill.call(process, target, sig);
  }) as typeof process.kill;
  t.after(() => { process.kill = realKill; });
  const r = await rest.request("DELETE", `/1.0/listeners/${lbId}`);
  process.kill = realKill;
  assert.equal(r.status, 503, r.text);
  const j = r.json<{ message: string; details: string }>();
  assert.match(j.message, /Could not stop haproxy/);
  assert.match(j.details, /EPERM/);
  // Nothing removed: config and the running haproxy stay.
  assert.equal((await lb.getConfig({ lbId })).version, 1n);
  assert.equal((await httpGet(port)).body, "kept");
  // A retry that can stop it deletes it.
  assert.equal((await rest.request("DELETE", `/1.0/listeners/${lbId}`)).status, 200);
  assert.equal(existsSync(join(agent.stateDir, "lb", lbId)), false);
});

test("DELETE /1.0/listeners/{id} removes a stored UDP listener (idempotent) and GET /1.0/listeners lists it as UDP", async (t) => {
  const { agent } = await setup(t);
  const rest = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => rest.close());
  const listener = randomUUID();
  const lvs = `# Configuration for Listener ${listener}\n\nvirtual_server 203.0.113.5 53 {\n    lb_algo rr\n    lb_kind NAT\n    protocol UDP\n\n    real_server 198.51.100.2 53 {\n        weight 1\n    }\n}\n`;
  await agent.client(KeepalivedService).putUdpListenerConfig({ amphoraId: agent.config.amphoraId, listenerId: listener, config: lvs });
  const listed = await rest.request("GET", "/1.0/listeners");
  assert.equal(listed.status, 200);
  // Nothing runs LVS on this agent (no IPVS here), so it is STOPPED.
  const l = listed.json<Record<string, unknown>[]>();
  assert.equal(l.length, 1);
  assert.deepEqual({ status: l[0]!.status, uuid: l[0]!.uuid, type: l[0]!.type }, { status: "STOPPED", uuid: listener, type: "UDP" });
  const del = await rest.request("DELETE", `/1.0/listeners/${listener}`);
  assert.equal(del.status, 200, del.text);
  assert.equal(del.json<{ message: string }>().message, "OK");
  assert.equal(existsSync(join(agent.stateDir, "lvs", `${listener}.conf`)), false);
  assert.equal((await rest.request("GET", `/1.0/listeners/${listener}/udp_listener`)).status, 404);
  assert.deepEqual((await rest.request("GET", "/1.0/listeners")).json(), []);
  assert.equal((await rest.request("DELETE", `/1.0/listeners/${listener}`)).status, 200);
  const e = await rpcError(agent.client(KeepalivedService).getUdpListenerConfig({ listenerId: listener }));
  assert.equal(e.code, Code.NotFound);
});
