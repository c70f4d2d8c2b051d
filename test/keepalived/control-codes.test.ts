// ControlVrrp's answers when an action fails, with a real keepalived in a
// test namespace: over RPC, an action the current state does not allow is
// failed_precondition (with a reason naming the state), keepalived failing
// otherwise stays internal; over REST every one of them is still 500, as
// Octavia's agent answers and its controller expects.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { Code } from "@connectrpc/connect";
import { KeepalivedService, VrrpAction } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { rpcError } from "../support/lb-test.js";
import { Topology } from "../network/netns.js";
import { RestClient } from "../transport/rest/https-client.js";
import { stopKeepalived, vrrpConfig } from "./support.js";

interface Expected {
  code: Code;
  message: string;
  reason: string;
  details: RegExp;
}

/** The same failure over Connect (binary and JSON), gRPC and REST. */
async function expectFailure(agent: TestAgent, rest: RestClient, action: VrrpAction, x: Expected, o: { slow?: boolean; before?: () => Promise<void> } = {}) {
  // A failure that waits for keepalived (~5 s) is asked once over RPC.
  for (const kind of o.slow ? ["connect"] as const : ["connect", "grpc"] as const) {
    await o.before?.();
    const e = await rpcError(agent.client(KeepalivedService, kind).controlVrrp({ action }));
    const info = e.findDetails(ErrorInfoSchema)[0]!;
    assert.deepEqual({ code: Code[e.code], message: e.rawMessage, reason: info.reason }, { code: Code[x.code], message: x.message, reason: x.reason }, `${kind}: ${info.details}`);
    assert.match(info.details, x.details, kind);
  }
  await o.before?.();
  const r = await rest.request("PUT", `/1.0/vrrp/${VrrpAction[action].toLowerCase()}`);
  assert.equal(r.status, 500, r.text);
  const body = r.json<{ message: string; details: string }>();
  assert.equal(body.message, x.message);
  assert.match(body.details, x.details);
}

describe("ControlVrrp failures: failed_precondition or internal over RPC, 500 over REST", () => {
  const topo = new Topology();
  let ns = "";
  let agent: TestAgent;
  let rest: RestClient;
  const base = { routerId: "amt_cc", state: "MASTER" as const, priority: 100, src: "192.0.2.31", peer: "192.0.2.32", vips: ["192.0.2.30/32"] };

  before(async () => {
    ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "192.0.2.31/24", "dev", "eth1"]);
    agent = await startTestAgent({ overrides: { netns: ns } });
    rest = new RestClient(agent.url, agent);
  });
  after(async () => {
    rest?.close();
    await stopKeepalived(agent);
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("start before any upload: failed_precondition NOT_CONFIGURED", async () => {
    await expectFailure(agent, rest, VrrpAction.START, {
      code: Code.FailedPrecondition, message: "Failed to start keepalived", reason: "NOT_CONFIGURED", details: /no keepalived configuration has been uploaded/,
    });
  });

  test("reload while keepalived is not running: failed_precondition NOT_RUNNING", async () => {
    await agent.client(KeepalivedService).putVrrpConfig({ config: vrrpConfig({ ...base, iface: "eth1" }) });
    await expectFailure(agent, rest, VrrpAction.RELOAD, {
      code: Code.FailedPrecondition, message: "Failed to reload keepalived", reason: "NOT_RUNNING", details: /keepalived is not running/,
    });
  });

  test("start with a stored config keepalived no longer accepts: failed_precondition CONFIG_REFUSED", async () => {
    // Stored when it passed (an older keepalived, or an interface since gone);
    // written here directly, as no upload would store it. It has no
    // vrrp_instance, so keepalived runs without a VRRP child and never
    // becomes ready: the outcome does not depend on when it is polled.
    writeFileSync(agent.ctx.keepalived.configFile, "global_defs {\n  router_id amt_cc\n  no_such_keyword 1\n}\n");
    await expectFailure(agent, rest, VrrpAction.START, {
      code: Code.FailedPrecondition, message: "Failed to start keepalived", reason: "CONFIG_REFUSED", details: /keepalived refuses the stored configuration: .*no_such_keyword/s,
    }, { slow: true, before: () => agent.ctx.keepalived.stop().then(() => {}) });
  });

  test("start where keepalived itself fails (accepted config, never comes up) stays internal START_FAILED", async () => {
    // Valid for keepalived -t, but without a vrrp_instance it starts no VRRP child: never ready.
    await agent.client(KeepalivedService).putVrrpConfig({ config: "global_defs {\n  router_id amt_cc_internal\n}\n" });
    await expectFailure(agent, rest, VrrpAction.START, {
      code: Code.Internal, message: "Failed to start keepalived", reason: "START_FAILED", details: /did not come up/,
    }, {
      slow: true,
      // The parent it launched runs on (adopted, wanted running): stop it, so the next start launches again.
      before: () => agent.ctx.keepalived.stop().then(() => {}),
    });
  });
});

describe("ControlVrrp start without the load-balancer namespace", () => {
  const topo = new Topology();
  let agent: TestAgent | undefined;
  let rest: RestClient | undefined;
  after(async () => {
    rest?.close();
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("a stored config but no namespace (not plugged yet): failed_precondition NETNS_MISSING naming it; REST 500", async () => {
    const ns = topo.reserveName();
    agent = await startTestAgent({ overrides: { netns: ns } });
    rest = new RestClient(agent.url, agent);
    // Stored earlier (an upload needs the namespace); the namespace is gone now.
    const file = agent.ctx.keepalived.configFile;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, vrrpConfig({ routerId: "amt_nn", state: "MASTER", priority: 100, iface: "eth1", src: "192.0.2.41", peer: "192.0.2.42", vips: ["192.0.2.40/32"] }));
    await expectFailure(agent, rest, VrrpAction.START, {
      code: Code.FailedPrecondition, message: "Failed to start keepalived", reason: "NETNS_MISSING", details: new RegExp(`network namespace ${ns} does not exist yet`),
    });
  });
});
