// Hot-plugged ports appear outside the load-balancer namespace; plugging
// moves them in (as Octavia's agent does), renamed as Octavia's agent names
// them (eth1 for the VIP port, eth<links already there> for others), and
// moves them back under their own name if the plug fails. The "host" side
// is a test namespace here, never the real host.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DomainError } from "../../src/errors.js";
import { NetworkPlumbing } from "../../src/network/plumbing.js";
import { Topology, ipv4Of } from "./netns.js";

const MAC = "02:a5:00:00:0f:01";
const MEMBER_MAC = "02:a5:00:00:0f:02";

describe("plugging a port that is still in the source namespace", () => {
  const topo = new Topology();
  const stateDir = mkdtempSync(join(tmpdir(), "amphora-adopt-"));
  let host = "";
  let lb = "";
  let plumbing: NetworkPlumbing;
  const names = async (ns: string, mac = MAC) => (await topo.ip<{ ifname: string; address: string }[]>(ns, ["link", "show"])).filter((l) => l.address === mac).map((l) => l.ifname);

  before(async () => {
    host = await topo.netns();
    lb = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(host, "ens7", peer, "p1", { macA: MAC });
    await topo.veth(host, "ens8", peer, "p2", { macA: MEMBER_MAC });
    plumbing = new NetworkPlumbing(lb, stateDir, () => "SINGLE", undefined, host);
  });
  after(async () => {
    await topo.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("a failed plug moves the port back where it was", async () => {
    await assert.rejects(
      plumbing.plugVip({
        vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: MAC, vrrpIp: "",
        hostRoutes: [{ destination: "198.51.100.0/24", nexthop: "255.255.255.255" }], additionalVips: [],
      }),
      (e: DomainError) => e.kind === "failed" && e.message === "Error plugging VIP",
    );
    assert.deepEqual(await names(host), ["ens7"]);
    assert.deepEqual(await names(lb), []);
  });

  test("an invalid request does not move the port at all", async () => {
    await assert.rejects(
      plumbing.plugVip({ vip: "203.0.113.10", subnetCidr: "192.0.2.0/24", gateway: "", macAddress: MAC, vrrpIp: "", hostRoutes: [], additionalVips: [] }),
      (e: DomainError) => e.kind === "invalid",
    );
    assert.deepEqual(await names(host), ["ens7"]);
  });

  test("plug VIP moves the port into the load-balancer namespace as eth1 and configures it there", async () => {
    const r = await plumbing.plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: MAC, vrrpIp: "", hostRoutes: [], additionalVips: [] });
    assert.equal(r.ifname, "eth1");
    assert.deepEqual(await names(host), []);
    assert.deepEqual(await names(lb), ["eth1"]);
    assert.deepEqual(await ipv4Of(topo, lb, "eth1"), ["192.0.2.10/24"]);
    // Plugging again finds it in place.
    await plumbing.plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: MAC, vrrpIp: "", hostRoutes: [], additionalVips: [] });
    assert.deepEqual(await ipv4Of(topo, lb, "eth1"), ["192.0.2.10/24"]);
  });

  test("plug network names the member port eth2 (lo and eth1 are there)", async () => {
    const r = await plumbing.plugNetwork({ macAddress: MEMBER_MAC, fixedIps: [{ ipAddress: "198.51.100.20", subnetCidr: "198.51.100.0/24", hostRoutes: [], gateway: "" }] });
    assert.equal(r.ifname, "eth2");
    assert.deepEqual(await names(lb, MEMBER_MAC), ["eth2"]);
    assert.deepEqual(await ipv4Of(topo, lb, "eth2"), ["198.51.100.20/24"]);
  });

  test("after a reboot (ports back in the source namespace under their own names, bare) re-applying moves them in under the recorded names", async () => {
    await topo.sh(lb, "ip", ["link", "set", "dev", "eth1", "netns", host, "name", "ens7"]);
    await topo.sh(lb, "ip", ["link", "set", "dev", "eth2", "netns", host, "name", "ens8"]);
    assert.deepEqual(await names(lb), []);
    const r = await plumbing.reapply();
    assert.deepEqual({ ...r, applied: r.applied.sort() }, { applied: ["eth1", "eth2"], failures: [], refused: [] });
    assert.deepEqual(await names(lb), ["eth1"]);
    assert.deepEqual(await ipv4Of(topo, lb, "eth1"), ["192.0.2.10/24"]);
    assert.deepEqual(await ipv4Of(topo, lb, "eth2"), ["198.51.100.20/24"]);
  });
});
