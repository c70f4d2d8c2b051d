// UDP listeners (keepalived LVS configs): validated with the real
// `keepalived -t`, stored, returned as uploaded. This kernel has no IPVS, so
// running one must be refused with a clear precondition error, not faked.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { KeepalivedService } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { DomainError } from "../../src/errors.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { run } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology } from "../network/netns.js";

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
    const ipvs = await run("ipvsadm", ["-L", "-n"]);
    if (ipvs.exitCode !== 0) assert.match(res.details, /cannot run on this amphora: the kernel has no IPVS/);
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
    const ipvs = await run("ipvsadm", ["-L", "-n"]);
    if (ipvs.exitCode === 0) return t.skip("this kernel has IPVS");
    const listener = randomUUID();
    await agent.ctx.lvs.put(listener, LVS(listener));
    await assert.rejects(agent.ctx.lvs.ensureRunnable(listener), (e: DomainError) =>
      e.kind === "precondition" && e.reason === "IPVS_UNAVAILABLE" && /Protocol not available/.test(e.details));
    await agent.ctx.lvs.delete(listener);
    await agent.ctx.lvs.delete(listener);
    await assert.rejects(agent.ctx.lvs.get(listener), (e: DomainError) => e.kind === "not_found");
  });
});
