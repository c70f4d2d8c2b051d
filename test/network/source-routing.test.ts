// Why plug VIP installs source-based routing, shown with real traffic: a
// client in another subnet reaches the VIP through a router on the VIP
// network while the load-balancer namespace's main default route points at a
// member network that cannot reach the client. Replies from the VIP must
// still leave through the VIP interface (rule "from VIP" -> the interface's
// table). Without the rule the same connection fails — the control case.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { run } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology } from "./netns.js";

const VIP_MAC = "02:a5:00:00:2a:01";
const MEMBER_MAC = "02:a5:00:00:2a:02";

describe("source-based routing of VIP replies", () => {
  const topo = new Topology();
  let lb = "";
  let client = "";
  let agent: TestAgent;
  let port = 18090;

  /** One TCP exchange client -> VIP; true when the reply came back. */
  async function reachable(): Promise<boolean> {
    const p = String(port++);
    const server = run("socat", ["-T", "4", `TCP-LISTEN:${p},bind=192.0.2.10,reuseaddr`, "SYSTEM:echo routed"], { netns: lb, timeoutMs: 8000 });
    let reply = "";
    for (let i = 0; i < 10 && !reply; i++) {
      const r = await run("socat", ["-T", "2", "-", `TCP:192.0.2.10:${p},connect-timeout=2`], { netns: client, input: "", timeoutMs: 5000 });
      reply = r.stdout.trim();
      if (reply || !/refused/i.test(r.stderr)) break; // refused: listener not up yet; timeout: replies lost
      await new Promise((res) => setTimeout(res, 50));
    }
    if (!reply) {
      // Release the listener from inside its own namespace.
      await run("socat", ["-T", "1", "-", `TCP:192.0.2.10:${p},connect-timeout=1`], { netns: lb, input: "", timeoutMs: 3000 });
    }
    await server;
    return reply === "routed";
  }

  before(async () => {
    lb = await topo.netns();
    const router = await topo.netns();
    client = await topo.netns();
    const dead = await topo.netns();
    await topo.veth(lb, "eth1", router, "r1", { macA: VIP_MAC });
    await topo.veth(lb, "eth2", dead, "x1", { macA: MEMBER_MAC });
    await topo.veth(client, "c1", router, "r2", { up: true });
    await topo.sh(router, "ip", ["addr", "add", "192.0.2.1/24", "dev", "r1"]);
    await topo.sh(router, "ip", ["link", "set", "r1", "up"]);
    await topo.sh(router, "ip", ["addr", "add", "203.0.113.1/24", "dev", "r2"]);
    await topo.sh(router, "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
    await topo.sh(client, "ip", ["addr", "add", "203.0.113.5/24", "dev", "c1"]);
    await topo.sh(client, "ip", ["route", "add", "default", "via", "203.0.113.1"]);
    // The member side answers ARP but has no way to the client.
    await topo.sh(dead, "ip", ["addr", "add", "198.51.100.1/24", "dev", "x1"]);
    await topo.sh(dead, "ip", ["link", "set", "x1", "up"]);
    agent = await startTestAgent({ overrides: { netns: lb } });
  });
  after(async () => {
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("VIP replies follow the VIP interface's table, not the main default route", async () => {
    const net = agent.client(NetworkService);
    const vip = { vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC };
    await net.plugVip(vip);
    await net.plugNetwork({ macAddress: MEMBER_MAC, fixedIps: [{ ipAddress: "198.51.100.20", subnetCidr: "198.51.100.0/24", gateway: "", hostRoutes: [] }] });
    assert.equal(await reachable(), true, "reachable with the VIP's default route in main");

    // Point main's default route at the member network, where the client is unreachable.
    await topo.sh(lb, "ip", ["route", "replace", "default", "via", "198.51.100.1", "dev", "eth2"]);
    assert.equal(await reachable(), true, "still reachable: replies from the VIP use its own table");

    // Control: without the rule, replies follow main and are lost.
    const table = String(1000 + (await topo.ip<{ ifindex: number }[]>(lb, ["link", "show", "dev", "eth1"]))[0]!.ifindex);
    await topo.sh(lb, "ip", ["rule", "del", "from", "192.0.2.10", "table", table, "priority", "100"]);
    assert.equal(await reachable(), false, "without source routing the reply goes out the member network");

    // Plugging again restores the rule (and, being the VIP plug, main's default too).
    await net.plugVip(vip);
    await topo.sh(lb, "ip", ["route", "replace", "default", "via", "198.51.100.1", "dev", "eth2"]);
    assert.equal(await reachable(), true, "re-plug restored the rule");
  });
});
