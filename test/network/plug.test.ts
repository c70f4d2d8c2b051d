// Plug VIP / plug network against a real agent whose network namespace is a
// test namespace: real `ip` in a real namespace, veth pairs to a peer
// namespace, checked with `ip -j` and with real traffic (socat over TCP).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { run, runChecked } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology, ipv4Of } from "./netns.js";
import { rpcError } from "../support/lb-test.js";

const VIP_MAC = "02:a5:00:00:00:01";
const MEMBER_MAC = "02:a5:00:00:00:02";

describe("plug VIP and plug network in a namespace", () => {
  const topo = new Topology();
  let ns = "";
  let peer = "";
  let agent: TestAgent;

  /** Everything that describes the namespace's network state, for before/after comparisons. */
  async function snapshot() {
    const addrs = await ipv4Of(topo, ns, "eth1");
    const link = (await topo.ip<{ mtu: number; flags: string[] }[]>(ns, ["link", "show", "dev", "eth1"]))[0]!;
    const routes = await topo.ip(ns, ["-4", "route", "show", "table", "all"]);
    const rules = await topo.ip(ns, ["-4", "rule", "show"]);
    return { addrs, mtu: link.mtu, up: link.flags.includes("UP"), routes, rules };
  }

  before(async () => {
    ns = await topo.netns();
    peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { macA: VIP_MAC });
    await topo.veth(ns, "eth2", peer, "p2", { macA: MEMBER_MAC });
    agent = await startTestAgent({ overrides: { netns: ns } });
  });
  after(async () => {
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("a VIP with a wrong subnet or outside its subnet is refused and changes nothing", async () => {
    const client = agent.client(NetworkService);
    const before = await snapshot();
    let e = await rpcError(client.plugVip({ vip: "203.0.113.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC }));
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Invalid VIP");
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /not inside subnet 192\.0\.2\.0\/24/);
    // Host bits set: refused at the edge by the proto's ip_prefix rule.
    e = await rpcError(client.plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.5/24", gateway: "192.0.2.1", macAddress: VIP_MAC }));
    assert.equal(e.code, Code.InvalidArgument);
    assert.match(e.rawMessage, /subnet_cidr/);
    e = await rpcError(client.plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "2001:db8::1", macAddress: VIP_MAC }));
    assert.equal(e.rawMessage, "Invalid subnet information");
    assert.deepEqual(await snapshot(), before);
  });

  test("an unknown MAC address is 404 No suitable network interface found", async () => {
    const e = await rpcError(agent.client(NetworkService).plugVip({
      vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: "02:a5:00:00:00:99",
    }));
    assert.equal(e.code, Code.NotFound);
    assert.equal(e.rawMessage, "No suitable network interface found");
  });

  test("a failing step rolls back everything the call added", async () => {
    const before = await snapshot();
    assert.equal(before.up, false);
    // 255.255.255.255 passes every input check but the kernel refuses it as a
    // nexthop, after MTU, link state and addresses were already changed.
    const e = await rpcError(agent.client(NetworkService).plugVip({
      vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC, mtu: 1400,
      vrrpIp: "192.0.2.11", hostRoutes: [{ destination: "198.51.100.0/24", nexthop: "255.255.255.255" }],
    }));
    assert.equal(e.code, Code.Internal);
    assert.equal(e.rawMessage, "Error plugging VIP");
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /gateway|nexthop/i);
    assert.deepEqual(await snapshot(), before);
  });

  test("plug VIP configures addresses, MTU, policy routing; plugging twice gives the same state", async () => {
    const client = agent.client(NetworkService);
    const req = {
      vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC.toUpperCase(), mtu: 1450,
      vrrpIp: "192.0.2.11",
      hostRoutes: [{ destination: "198.51.100.0/25", nexthop: "192.0.2.254" }],
      additionalVips: [{ subnetCidr: "203.0.113.0/24", gateway: "", ipAddress: "203.0.113.10", hostRoutes: [] }],
    };
    const res = await client.plugVip(req);
    assert.equal(res.message, "OK");
    assert.equal(res.interface, "eth1");
    assert.equal(res.details, "VIP 192.0.2.10 plugged on interface eth1");

    const s1 = await snapshot();
    assert.deepEqual(s1.addrs, ["192.0.2.10/24", "192.0.2.11/24", "203.0.113.10/24"]);
    assert.equal(s1.mtu, 1450);
    assert.equal(s1.up, true);
    const ifindex = (await topo.ip<{ ifindex: number }[]>(ns, ["link", "show", "dev", "eth1"]))[0]!.ifindex;
    const table = String(1000 + ifindex);
    const tableRoutes = (await topo.ip<{ dst: string; gateway?: string; dev: string }[]>(ns, ["-4", "route", "show", "table", table]))
      .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} dev ${r.dev}`).sort();
    assert.deepEqual(tableRoutes, [
      "192.0.2.0/24 dev eth1", "198.51.100.0/25 via 192.0.2.254 dev eth1", "203.0.113.0/24 dev eth1", "default via 192.0.2.1 dev eth1",
    ]);
    const main = await topo.ip<{ dst: string; gateway?: string }[]>(ns, ["-4", "route", "show", "table", "main"]);
    assert.ok(main.some((r) => r.dst === "default" && r.gateway === "192.0.2.1"), "default route in main");
    assert.ok(main.some((r) => r.dst === "198.51.100.0/25" && r.gateway === "192.0.2.254"), "host route in main");
    const rules = await topo.ip<{ priority: number; src: string; table: string }[]>(ns, ["-4", "rule", "show"]);
    const ours = rules.filter((r) => r.table === table).map((r) => `${r.priority} ${r.src}`).sort();
    assert.deepEqual(ours, ["100 192.0.2.10", "100 203.0.113.10"]);

    // haproxy on a BACKUP must be able to bind the VIP it does not hold.
    const sysctl = await runChecked("sysctl", ["-n", "net.ipv4.ip_nonlocal_bind"], { netns: ns });
    assert.equal(sysctl.stdout.trim(), "1");

    await client.plugVip(req);
    assert.deepEqual(await snapshot(), s1, "second plug changes nothing");

    const state = JSON.parse(readFileSync(join(agent.stateDir, "network", "plugged.json"), "utf8"));
    assert.equal(state.interfaces[VIP_MAC].kind, "vip");
    assert.equal(state.interfaces[VIP_MAC].ifname, "eth1");
    assert.equal(state.interfaces[VIP_MAC].spec.vip, "192.0.2.10");
  });

  test("the VIP answers TCP from the peer namespace", async () => {
    await topo.sh(peer, "ip", ["addr", "add", "192.0.2.1/24", "dev", "p1"]);
    await topo.sh(peer, "ip", ["link", "set", "p1", "up"]);
    const port = "18080";
    const server = run("socat", ["-T", "5", `TCP-LISTEN:${port},bind=192.0.2.10,reuseaddr`, "SYSTEM:echo plugged"], { netns: ns, timeoutMs: 10_000 });
    let reply = "";
    for (let i = 0; i < 20 && !reply; i++) {
      const r = await run("socat", ["-T", "2", "-", `TCP:192.0.2.10:${port},connect-timeout=1`], { netns: peer, input: "", timeoutMs: 5000 });
      reply = r.stdout.trim();
      if (!reply) await new Promise((res) => setTimeout(res, 50));
    }
    await server;
    assert.equal(reply, "plugged");
  });

  test("re-plugging with other values removes what the previous plug added", async () => {
    const client = agent.client(NetworkService);
    await client.plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC, vrrpIp: "192.0.2.12" });
    const s = await snapshot();
    assert.deepEqual(s.addrs, ["192.0.2.10/24", "192.0.2.12/24"]);
    const rules = await topo.ip<{ src: string; priority: number }[]>(ns, ["-4", "rule", "show"]);
    assert.deepEqual(rules.filter((r) => r.priority === 100).map((r) => r.src), ["192.0.2.10"]);
    const main = await topo.ip<{ dst: string }[]>(ns, ["-4", "route", "show", "table", "main"]);
    assert.ok(!main.some((r) => r.dst === "198.51.100.0/25"), "old host route removed");
  });

  test("a plug that fails after applying (the record cannot be written) undoes everything, old plug intact", async (t) => {
    const client = agent.client(NetworkService);
    const before = await snapshot();
    const stateFile = join(agent.stateDir, "network", "plugged.json");
    const recorded = readFileSync(stateFile, "utf8");
    // Immutable folder: plugged.json stays readable, but no new file can be
    // written into it, so the failure comes after `ip` changed the interface.
    const dir = join(agent.stateDir, "network");
    const immutable = await run("chattr", ["+i", dir]);
    if (immutable.exitCode !== 0) {
      t.skip(`chattr +i unsupported in ${dir}: ${immutable.stderr.trim()}`);
      return;
    }
    let e: ConnectError;
    try {
      e = await rpcError(client.plugVip({
        vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC, mtu: 1420, vrrpIp: "192.0.2.13",
        hostRoutes: [{ destination: "198.51.100.0/26", nexthop: "192.0.2.253" }],
      }));
    } finally {
      await run("chattr", ["-i", dir]);
    }
    assert.equal(e.code, Code.Internal);
    assert.equal(e.rawMessage, "Error plugging VIP");
    assert.deepEqual(await snapshot(), before, "new addresses/routes removed, the old plug's (192.0.2.12) kept");
    assert.equal(readFileSync(stateFile, "utf8"), recorded);
  });

  test("the interface carrying the agent's bind address is never plugged", async () => {
    // Domain call: the test agent itself listens on 127.0.0.1.
    const before = await snapshot();
    const e = await agent.ctx.network.plugVip(
      { vip: "192.0.2.30", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: VIP_MAC, vrrpIp: "", hostRoutes: [], additionalVips: [] },
      { bindHost: "192.0.2.10" },
    ).then(() => assert.fail("expected a refusal"), (x) => x);
    // A conflict with the agent's own reachability, not a malformed request: 409 over REST.
    assert.equal(e.kind, "precondition");
    assert.equal(e.message, "Error plugging VIP");
    assert.match(e.details, /refusing to plug eth1 \(02:a5:00:00:00:01\): it carries the agent's management address 192\.0\.2\.10/);
    assert.deepEqual(await snapshot(), before);
    // lo is never found as a port, whatever MAC is asked for.
    const lo = await rpcError(agent.client(NetworkService).plugNetwork({ macAddress: "00:00:00:00:00:00", fixedIps: [] }));
    assert.equal(lo.code, Code.NotFound);
  });

  test("recorded plugs are re-applied after the interface lost its addresses", async () => {
    await topo.sh(ns, "ip", ["addr", "flush", "dev", "eth1"]);
    assert.deepEqual(await ipv4Of(topo, ns, "eth1"), []);
    const r = await agent.ctx.network.reapply();
    assert.deepEqual(r.failures, []);
    assert.deepEqual(await ipv4Of(topo, ns, "eth1"), ["192.0.2.10/24", "192.0.2.12/24"]);
  });

  test("plug network configures the member port's fixed IPs and host routes", async () => {
    const client = agent.client(NetworkService);
    let e = await rpcError(client.plugNetwork({
      macAddress: MEMBER_MAC, fixedIps: [{ ipAddress: "198.51.100.20", subnetCidr: "203.0.113.0/24", hostRoutes: [], gateway: "" }],
    }));
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Invalid port information");
    e = await rpcError(client.plugNetwork({ macAddress: "02:a5:00:00:00:98", fixedIps: [] }));
    assert.equal(e.code, Code.NotFound);

    const res = await client.plugNetwork({
      macAddress: MEMBER_MAC, mtu: 1400,
      fixedIps: [{
        ipAddress: "198.51.100.20", subnetCidr: "198.51.100.0/24", gateway: "",
        hostRoutes: [{ destination: "203.0.113.128/25", nexthop: "198.51.100.1" }],
      }],
    });
    assert.equal(res.interface, "eth2");
    assert.equal(res.details, "Plugged interface eth2");
    assert.deepEqual(await ipv4Of(topo, ns, "eth2"), ["198.51.100.20/24"]);
    const link = (await topo.ip<{ mtu: number; flags: string[] }[]>(ns, ["link", "show", "dev", "eth2"]))[0]!;
    assert.equal(link.mtu, 1400);
    assert.ok(link.flags.includes("UP"));
    const main = await topo.ip<{ dst: string; gateway?: string; dev: string }[]>(ns, ["-4", "route", "show", "table", "main"]);
    assert.ok(main.some((r) => r.dst === "203.0.113.128/25" && r.gateway === "198.51.100.1" && r.dev === "eth2"));
    // The VIP interface is untouched by a member plug.
    assert.deepEqual(await ipv4Of(topo, ns, "eth1"), ["192.0.2.10/24", "192.0.2.12/24"]);
  });
});
