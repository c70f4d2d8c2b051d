// WatchEvents from the network side, with a real agent in a namespace it
// does not share, real veth pairs and real keepalived: interface plugs, VRRP
// config stored/rejected, and VRRP state changes as keepalived reports them
// through the agent's notify FIFO (BACKUP -> MASTER at start, STOP when
// stopped, FAULT when the tracked haproxy check fails).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, readFileSync, rmSync } from "node:fs";
import { KeepalivedService, VrrpAction } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { ConfigTarget, EventKind, EventService, PlugKind, VrrpState, type Event } from "../../src/gen/amphora/v1/events_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology } from "../network/netns.js";
import { stopKeepalived, vrrpConfig } from "../keepalived/support.js";
import { kindIs, readEvents, type Reader } from "./support.js";

const VIP = "192.0.2.40";
const MAC_VIP = "02:a5:00:00:0e:01";
const MAC_MEMBER = "02:a5:00:00:0e:02";

describe("network and VRRP events", () => {
  const topo = new Topology();
  let ns = "";
  let agent: TestAgent;
  let r: Reader;

  before(async () => {
    ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "eth1", { macA: MAC_VIP });
    await topo.veth(ns, "eth2", peer, "eth2", { macA: MAC_MEMBER });
    // The far ends up (carrier), with nothing answering VRRP there.
    await topo.sh(peer, "ip", ["link", "set", "eth1", "up"]);
    await topo.sh(peer, "ip", ["link", "set", "eth2", "up"]);
    agent = await startTestAgent({ overrides: { netns: ns, topology: "ACTIVE_STANDBY" } });
    r = readEvents(agent.client(EventService));
  });
  after(async () => {
    r?.stop();
    await stopKeepalived(agent);
    await agent?.cleanup();
    await topo.cleanup();
  });

  const vrrpStates = () => r.events.filter(kindIs(EventKind.VRRP_STATE_CHANGED)).map((e) => (e.payload.value as { state: VrrpState }).state);
  const stateEvent = (s: VrrpState, after = 0n) => (e: Event) =>
    e.seq > after && e.payload.case === "vrrpStateChanged" && e.payload.value.state === s;

  test("plug VIP and plug network are interface_plugged events", async () => {
    const net = agent.client(NetworkService);
    await net.plugVip({ vip: VIP, subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: MAC_VIP, vrrpIp: "192.0.2.41" });
    const vip = await r.until("VIP plugged", kindIs(EventKind.INTERFACE_PLUGGED));
    assert.ok(vip.payload.case === "interfacePlugged");
    assert.deepEqual(
      [vip.payload.value.kind, vip.payload.value.interface, vip.payload.value.macAddress, vip.payload.value.addresses],
      [PlugKind.VIP, "eth1", MAC_VIP, [VIP, "192.0.2.41"]],
    );
    await net.plugNetwork({ macAddress: MAC_MEMBER, fixedIps: [{ ipAddress: "198.51.100.20", subnetCidr: "198.51.100.0/24", gateway: "", hostRoutes: [] }] });
    const member = await r.until("network plugged", (e) => e.payload.case === "interfacePlugged" && e.payload.value.kind === PlugKind.NETWORK);
    assert.ok(member.payload.case === "interfacePlugged");
    assert.deepEqual([member.payload.value.interface, member.payload.value.addresses], ["eth2", ["198.51.100.20"]]);
  });

  test("VRRP config stored and rejected; BACKUP then MASTER at start, STOP at stop, from keepalived itself", async () => {
    const k = agent.client(KeepalivedService);
    await assert.rejects(k.putVrrpConfig({ config: "vrrp_instance broken {\n  interface no-such-if\n  virtual_router_id 300\n}\n" }));
    const rejected = await r.until("VRRP config rejected", kindIs(EventKind.CONFIG_REJECTED));
    assert.ok(rejected.payload.case === "configRejected" && rejected.payload.value.target === ConfigTarget.KEEPALIVED && rejected.payload.value.reason);

    // The peer address exists but nothing answers there: this node becomes MASTER.
    const config = vrrpConfig({ routerId: "amt_ev", state: "BACKUP", priority: 100, iface: "eth1", src: "192.0.2.41", peer: "192.0.2.42", vips: [`${VIP}/32`] });
    await k.putVrrpConfig({ config });
    const stored = await r.until("VRRP config stored", (e) => e.payload.case === "configStored" && e.payload.value.target === ConfigTarget.KEEPALIVED);
    assert.ok(stored.payload.case === "configStored" && /^[0-9a-f]{32}$/.test(stored.payload.value.md5));

    await k.controlVrrp({ action: VrrpAction.START });
    const master = await r.until("MASTER", stateEvent(VrrpState.MASTER), 20_000);
    assert.ok(master.payload.case === "vrrpStateChanged");
    assert.deepEqual([master.payload.value.instance, master.payload.value.group, master.payload.value.priority], ["amt_vip", false, 100]);
    assert.deepEqual(vrrpStates(), [VrrpState.BACKUP, VrrpState.MASTER]);
    // keepalived runs the agent's configuration, which names the FIFO in <stateDir>/vrrp/.
    const run = readFileSync(agent.ctx.keepalived.runConfigFile, "utf8");
    assert.ok(run.includes(`include ${agent.ctx.keepalived.configFile}`) && run.includes(`notify_fifo ${agent.ctx.keepalived.notifyFifo}`), run);
    assert.ok(lstatSync(agent.ctx.keepalived.notifyFifo).isFIFO());

    await k.controlVrrp({ action: VrrpAction.STOP });
    await r.until("STOP", stateEvent(VrrpState.STOP, master.seq));
  });

  test("FAULT when the tracked haproxy check fails (no load balancer runs); a removed FIFO is made again at the next start", async () => {
    const k = agent.client(KeepalivedService);
    rmSync(agent.ctx.keepalived.notifyFifo);
    const since = r.events.at(-1)?.seq ?? 0n;
    const config = vrrpConfig({
      routerId: "amt_ev", state: "BACKUP", priority: 100, iface: "eth1", src: "192.0.2.41", peer: "192.0.2.42", vips: [`${VIP}/32`],
      checkScript: `${agent.stateDir}/vrrp/check_script.sh`,
    });
    await k.putVrrpConfig({ config });
    await k.controlVrrp({ action: VrrpAction.START });
    const fault = await r.until("FAULT", stateEvent(VrrpState.FAULT, since), 20_000);
    assert.ok(fault.payload.case === "vrrpStateChanged" && fault.payload.value.instance === "amt_vip");
    await k.controlVrrp({ action: VrrpAction.STOP });
  });
});
