// The -L peer name must be the one Octavia's controller writes into the
// `peers` section of an active/standby config: with any other name haproxy
// only warns, starts, and never binds the peer port, so stick tables stop
// syncing while every status stays green. Hence this test looks at the
// port, not at a status. The expected names are hard-coded from Octavia's
// own octavia.common.utils.base64_sha1_string (python3-octavia 11), for
// ids whose standard base64 holds both '+' and '/' (the two characters
// Octavia swaps the other way round from URL-safe base64) and one that
// starts with '/' (becomes '-', then 'x').
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { freePort, octaviaConfig } from "../support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { agentWithRunDir } from "../support/lb-test.js";

const OCTAVIA_NAMES: [amphoraId: string, name: string][] = [
  // standard base64 uZTS0+jC16I8SDVVgZk3e/t2Iuk=
  ["00000000-0000-4000-8000-000000000010", "uZTS0_jC16I8SDVVgZk3e-t2Iuk"],
  // standard base64 /S2sYRNU9p/tCjP8uBgqQ+wv0NU=
  ["00000000-0000-4000-8000-000000000017", "xS2sYRNU9p-tCjP8uBgqQ_wv0NU"],
];

function listens(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

test("active/standby: haproxy listens on the peer port of the controller's peers section (Octavia's peer names)", async (t) => {
  const { agent, runDir } = await agentWithRunDir(t);
  const lb = agent.client(LoadBalancerService);
  for (const [amphoraId, name] of OCTAVIA_NAMES) {
    const lbId = randomUUID();
    const peerPort = await freePort();
    const port = await freePort();
    // The local peer as the controller renders it; the other amphora's peer
    // is left out (its address would not be local here).
    const cfg = octaviaConfig({ lbId, runDir, peer: { name, port: peerPort }, listeners: [{ port, members: [], returnBody: "p" }] });
    await lb.putConfig({ amphoraId, lbId, config: cfg.text });
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    assert.ok(await listens(port), "the listener is up");
    assert.ok(await listens(peerPort), `peer port bound for amphora ${amphoraId} (peer ${name})`);
  }
});
