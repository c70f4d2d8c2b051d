// UDP listeners (keepalived LVS configs): validated with the real
// `keepalived -t`, stored, returned as uploaded. This kernel has no IPVS, so
// running one must be refused with a clear precondition error, not faked.
// What the agent should say about IPVS is asked of the agent's own check
// (ipvsadm may not be installed at all, which is its own reason).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { KeepalivedService } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LoadBalancerAction, LoadBalancerService } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { DomainError } from "../../src/errors.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { LvsListeners } from "../../src/keepalived/lvs.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology } from "../network/netns.js";
import { RestClient } from "../transport/rest/https-client.js";

const LVS = (listener: string) => `# Configuration for Listener ${listener}

net_namespace amphora-haproxy

virtual_server 203.0.113.5 53 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    delay_loop 30
    delay_before_retry 30
    retry 3

    real_server 198.51.100.2 53 {
        weight 13
        MISC_CHECK {
            misc_path "/var/lib/octavia/lvs/check/udp_check.sh 198.51.100.2 53"
            misc_timeout 31
        }
    }
}
`;

describe("UDP listener configurations", () => {
  const topo = new Topology();
  let agent: TestAgent;
  const amphora = randomUUID();

  before(async () => {
    const ns = await topo.netns();
    agent = await startTestAgent({ overrides: { netns: ns } });
  });
  after(async () => {
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("put stores a valid config, get returns it byte for byte, and the reply says it cannot run here", async () => {
    const client = agent.client(KeepalivedService);
    const listener = randomUUID();
    const res = await client.putUdpListenerConfig({ amphoraId: amphora, listenerId: listener, config: LVS(listener) });
    assert.equal(res.message, "OK");
    const ipvs = await agent.ctx.lvs.ipvsAvailable();
    if (!ipvs.ok) assert.ok(res.details.includes(`cannot run on this amphora: ${ipvs.why}`), res.details);
    assert.equal((await client.getUdpListenerConfig({ listenerId: listener })).config, LVS(listener));
    assert.ok((await agent.ctx.lvs.list()).includes(listener));
  });

  test("an invalid config is refused and the stored one kept", async () => {
    const client = agent.client(KeepalivedService);
    const listener = randomUUID();
    await client.putUdpListenerConfig({ amphoraId: amphora, listenerId: listener, config: LVS(listener) });
    const e = ConnectError.from(await client.putUdpListenerConfig({
      amphoraId: amphora, listenerId: listener, config: "virtual_server 203.0.113.5 53 {\n  weightz 3\n}\n",
    }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Invalid request");
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /Unknown keyword 'weightz'/);
    assert.equal((await client.getUdpListenerConfig({ listenerId: listener })).config, LVS(listener));
  });

  test("a listener whose pool has no members yet is accepted, with keepalived's warning", async () => {
    const client = agent.client(KeepalivedService);
    const listener = randomUUID();
    const empty = "virtual_server 203.0.113.5 53 {\n    lb_algo rr\n    lb_kind NAT\n    protocol UDP\n}\n";
    const res = await client.putUdpListenerConfig({ amphoraId: amphora, listenerId: listener, config: empty });
    assert.match(res.details, /has no real servers/);
    assert.equal((await client.getUdpListenerConfig({ listenerId: listener })).config, empty);
  });

  test("an unknown listener is not found; a non-UUID id is refused", async () => {
    const client = agent.client(KeepalivedService);
    let e = ConnectError.from(await client.getUdpListenerConfig({ listenerId: randomUUID() }).catch((x) => x));
    assert.equal(e.code, Code.NotFound);
    assert.equal(e.rawMessage, "UDP Listener Not Found");
    e = ConnectError.from(await client.getUdpListenerConfig({ listenerId: "../../etc/passwd" }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
  });

  test("running a UDP listener is refused as a precondition when the kernel has no IPVS", async (t) => {
    const ipvs = await agent.ctx.lvs.ipvsAvailable();
    if (ipvs.ok) return t.skip("this kernel has IPVS");
    const listener = randomUUID();
    await agent.ctx.lvs.put(listener, LVS(listener));
    await assert.rejects(agent.ctx.lvs.ensureRunnable(listener), (e: DomainError) =>
      e.kind === "precondition" && e.reason === ipvs.reason && e.details === ipvs.why);
    // With ipvsadm installed, the kernel's own answer is passed on.
    if (ipvs.reason === "IPVS_UNAVAILABLE") assert.match(ipvs.why, /Protocol not available/);
    await agent.ctx.lvs.delete(listener);
    await agent.ctx.lvs.delete(listener);
    await assert.rejects(agent.ctx.lvs.get(listener), (e: DomainError) => e.kind === "not_found");
  });

  test("start/reload/stop of a UDP listener id reach the LVS side over Connect and REST (not Loadbalancer Not Found)", async (t) => {
    const ipvs = await agent.ctx.lvs.ipvsAvailable();
    if (ipvs.ok) return t.skip("this kernel has IPVS");
    const listener = randomUUID();
    await agent.client(KeepalivedService).putUdpListenerConfig({ amphoraId: amphora, listenerId: listener, config: LVS(listener) });
    const lb = agent.client(LoadBalancerService);
    for (const action of [LoadBalancerAction.START, LoadBalancerAction.RELOAD]) {
      const e = ConnectError.from(await lb.controlLoadBalancer({ lbId: listener, action }).catch((x) => x));
      assert.equal(e.code, Code.FailedPrecondition);
      assert.equal(e.rawMessage, "UDP listeners cannot run on this amphora");
      const info = e.findDetails(ErrorInfoSchema)[0]!;
      assert.equal(info.reason, ipvs.reason);
      assert.equal(info.details, ipvs.why);
    }
    const stop = await lb.controlLoadBalancer({ lbId: listener, action: LoadBalancerAction.STOP });
    assert.equal(stop.message, "OK");
    assert.match(stop.details, /is not running \(UDP listeners cannot run on this amphora/);

    const rest = new RestClient(agent.url, agent, agent.config.amphoraId);
    t.after(() => rest.close());
    let r = await rest.request("PUT", `/1.0/loadbalancer/${listener}/start`);
    assert.equal(r.status, 409);
    assert.equal(r.json<{ message: string }>().message, "UDP listeners cannot run on this amphora");
    assert.ok(r.json<{ details: string }>().details.includes(ipvs.why), r.text);
    r = await rest.request("PUT", `/1.0/loadbalancer/${listener}/stop`);
    assert.equal(r.status, 202);
    // An id that is neither a load balancer nor a UDP listener is still not found.
    r = await rest.request("PUT", `/1.0/loadbalancer/${randomUUID()}/start`);
    assert.equal(r.status, 404);
    assert.equal(r.json<{ message: string }>().message, "Loadbalancer Not Found");
  });
});

test("a missing ipvsadm is reported as such, not as a kernel without IPVS", async (t) => {
  const state = mkdtempSync(join(tmpdir(), "amt-lvs-"));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const lvs = new LvsListeners(state, "", undefined, "amt-no-such-ipvsadm");
  const ipvs = await lvs.ipvsAvailable();
  assert.deepEqual({ ok: ipvs.ok, reason: ipvs.reason }, { ok: false, reason: "IPVSADM_MISSING" });
  assert.match(ipvs.why, /amt-no-such-ipvsadm is not installed/);
  const listener = randomUUID();
  await lvs.put(listener, LVS(listener));
  await assert.rejects(lvs.control(listener, "start"), (e: DomainError) =>
    e.kind === "precondition" && e.reason === "IPVSADM_MISSING" && /not installed/.test(e.details));
});

// Stand-ins for ipvsadm (sh scripts that count their runs): a probe timing out
// under load, or ipvsadm being installed later, cannot be produced on demand
// with the real one.
test("only definite IPVS answers are kept: a timed-out probe or a missing ipvsadm is asked again", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amt-lvs-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const runs = join(dir, "runs");
  const fake = (name: string, body: string) => {
    const f = join(dir, name);
    writeFileSync(f, `#!/bin/sh\necho x >> '${runs}'\n${body}\n`, { mode: 0o755 });
    return f;
  };
  const count = () => (existsSync(runs) ? readFileSync(runs, "utf8").split("\n").filter(Boolean).length : 0);

  // Times out on its first run only (then IPVS answers).
  const once = join(dir, "timed-out-once");
  const slow = new LvsListeners(dir, "", undefined, fake("slow", `[ -e '${once}' ] || { : > '${once}'; exec sleep 10; }\nexit 0`), 300);
  let r = await slow.ipvsAvailable();
  assert.equal(r.ok, false);
  assert.doesNotMatch(r.why, /the kernel has no IPVS/);
  r = await slow.ipvsAvailable();
  assert.equal(r.ok, true, "asked again after the timeout");
  await slow.ipvsAvailable();
  assert.equal(count(), 2, "a definite yes is kept");

  // A kernel without IPVS is a definite answer: asked once.
  rmSync(runs);
  const none = new LvsListeners(dir, "", undefined, fake("none", "echo \"Can't initialize ipvs: Protocol not available\" >&2\nexit 2"));
  for (let i = 0; i < 2; i++) assert.equal((await none.ipvsAvailable()).reason, "IPVS_UNAVAILABLE");
  assert.equal(count(), 1);

  // ipvsadm installed after the first question: found on the next.
  const later = join(dir, "later-ipvsadm");
  const lvs = new LvsListeners(dir, "", undefined, later);
  assert.equal((await lvs.ipvsAvailable()).reason, "IPVSADM_MISSING");
  fake("later-ipvsadm", "exit 0");
  assert.equal((await lvs.ipvsAvailable()).ok, true);
});
