// Active/standby with two real agents, each in its own namespace, joined by
// a veth pair, running real keepalived with unicast VRRP: the VIP is on the
// MASTER; when the MASTER's keepalived is stopped through its agent, the VIP
// moves to the BACKUP. Waits are bounded; no timing is asserted (see bench).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { KeepalivedService, VrrpAction } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology, eventually, ipv4Of } from "../network/netns.js";
import { stopKeepalived, vrrpConfig } from "./support.js";

const VIP = "192.0.2.10";
const MAC_A = "02:a5:00:00:0a:01";
const MAC_B = "02:a5:00:00:0b:01";

describe("VRRP failover between two agents", () => {
  const topo = new Topology();
  let nsA = "";
  let nsB = "";
  let a: TestAgent;
  let b: TestAgent;

  before(async () => {
    nsA = await topo.netns();
    nsB = await topo.netns();
    await topo.veth(nsA, "eth1", nsB, "eth1", { macA: MAC_A });
    await topo.sh(nsB, "ip", ["link", "set", "dev", "eth1", "address", MAC_B]);
    a = await startTestAgent({ overrides: { netns: nsA, topology: "ACTIVE_STANDBY" } });
    b = await startTestAgent({ overrides: { netns: nsB, topology: "ACTIVE_STANDBY" } });
  });
  after(async () => {
    await stopKeepalived(a);
    await stopKeepalived(b);
    await a?.cleanup();
    await b?.cleanup();
    await topo.cleanup();
  });

  const hasVip = async (ns: string) => (await ipv4Of(topo, ns, "eth1")).includes(`${VIP}/32`);

  test("plug VIP in ACTIVE_STANDBY leaves the VIP to keepalived; the VIP follows the MASTER", async () => {
    // As the controller does it: plug the VIP port (VRRP address only), then keepalived.
    for (const [agent, mac, vrrpIp] of [[a, MAC_A, "192.0.2.11"], [b, MAC_B, "192.0.2.12"]] as const) {
      await agent.client(NetworkService).plugVip({ vip: VIP, subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: mac, vrrpIp });
    }
    assert.deepEqual(await ipv4Of(topo, nsA, "eth1"), ["192.0.2.11/24"]);
    assert.deepEqual(await ipv4Of(topo, nsB, "eth1"), ["192.0.2.12/24"]);

    const common = { iface: "eth1", vips: [`${VIP}/32`] };
    await a.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ ...common, routerId: "amt_a", state: "MASTER", priority: 150, src: "192.0.2.11", peer: "192.0.2.12" }),
    });
    await b.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ ...common, routerId: "amt_b", state: "BACKUP", priority: 100, src: "192.0.2.12", peer: "192.0.2.11" }),
    });
    await a.client(KeepalivedService).controlVrrp({ action: VrrpAction.START });
    await b.client(KeepalivedService).controlVrrp({ action: VrrpAction.START });

    assert.ok(await eventually(() => hasVip(nsA), 15_000), "MASTER holds the VIP");
    // Give the BACKUP a few advertisement intervals to (wrongly) take it too.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(await hasVip(nsB), false, "BACKUP does not hold the VIP while the MASTER runs");

    assert.deepEqual((await a.client(KeepalivedService).getVrrpStatus({})).vipsHeld, [VIP]);
    assert.deepEqual((await b.client(KeepalivedService).getVrrpStatus({})).vipsHeld, []);

    await a.client(KeepalivedService).controlVrrp({ action: VrrpAction.STOP });
    assert.ok(await eventually(() => hasVip(nsB), 15_000), "VIP moved to the former BACKUP");
    assert.deepEqual((await b.client(KeepalivedService).getVrrpStatus({})).vipsHeld, [VIP]);
    assert.equal(await hasVip(nsA), false, "stopped MASTER released the VIP");
  });
});
