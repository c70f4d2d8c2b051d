// Agent restarts: with the namespace intact, a new agent on the same state
// directory adopts the running keepalived and changes nothing; after a
// simulated reboot (addresses flushed, keepalived killed) it re-applies the
// recorded plug, loads the stored interface rules and starts keepalived
// again. A keepalived stopped through the agent stays stopped.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KeepalivedService, VrrpAction } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { isRunning, readPidFile } from "../../src/keepalived/pid.js";
import { tableName } from "../../src/network/interface-rules.js";
import { runChecked } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { stopKeepalived, vrrpConfig } from "../keepalived/support.js";
import { Topology, eventually, ipv4Of } from "../network/netns.js";

const MAC = "02:a5:00:00:0d:01";

async function hasRulesTable(ns: string): Promise<boolean> {
  const r = await runChecked("nft", ["-j", "list", "tables"], { netns: ns });
  return (JSON.parse(r.stdout) as { nftables: { table?: { name: string } }[] }).nftables.some((i) => i.table?.name === tableName("eth1"));
}

/** A reboot leaves no process behind: end the VRRP child of the killed parent too. */
async function killOrphan(pidFile: string) {
  const pid = await readPidFile(pidFile);
  if (pid && (await isRunning(pid, "keepalived"))) {
    process.kill(pid, "SIGKILL");
    await eventually(async () => !(await isRunning(pid, "keepalived")), 5000);
  }
}

describe("restoring network state when the agent starts", () => {
  const topo = new Topology();
  const stateDir = mkdtempSync(join(tmpdir(), "amphora-restore-"));
  let ns = "";
  let agent: TestAgent | undefined;
  const start = async () => (agent = await startTestAgent({ stateDir, overrides: { netns: ns } }));

  before(async () => {
    ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { macA: MAC });
  });
  after(async () => {
    await stopKeepalived(agent);
    await agent?.cleanup();
    await topo.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("agent restart adopts; reboot restores plug and keepalived; a stopped keepalived stays stopped", async () => {
    let a = await start();
    await a.client(NetworkService).plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: MAC, vrrpIp: "192.0.2.11" });
    await a.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ routerId: "amt_r", state: "MASTER", priority: 100, iface: "eth1", src: "192.0.2.11", peer: "192.0.2.12", vips: ["192.0.2.20/32"] }),
    });
    await a.client(KeepalivedService).controlVrrp({ action: VrrpAction.START });
    await a.client(NetworkService).setInterfaceRules({ ip: "192.0.2.11", rules: [{ protocol: "TCP", port: 443 }, { protocol: "VRRP", port: 0 }] });
    const pid1 = (await a.ctx.keepalived.status()).pid!;
    await a.cleanup();

    // Agent restart only: the same keepalived keeps running.
    a = await start();
    assert.equal((await a.ctx.keepalived.status()).pid, pid1);
    await a.cleanup();

    // "Reboot": keepalived gone, interface bare.
    process.kill(pid1, "SIGKILL");
    assert.ok(await eventually(async () => !(await isRunning(pid1, "keepalived")), 5000));
    await killOrphan(a.ctx.keepalived.vrrpPidFile);
    await topo.sh(ns, "ip", ["addr", "flush", "dev", "eth1"]);
    await topo.sh(ns, "nft", ["flush", "ruleset"]);
    assert.equal(await hasRulesTable(ns), false);
    a = await start();
    assert.equal(await hasRulesTable(ns), true, "interface rules loaded again");
    assert.deepEqual((await ipv4Of(topo, ns, "eth1")).filter((x) => x !== "192.0.2.20/32"), ["192.0.2.10/24", "192.0.2.11/24"]);
    const st = await a.ctx.keepalived.status();
    assert.equal(st.running, true);
    assert.notEqual(st.pid, pid1);

    await a.client(KeepalivedService).controlVrrp({ action: VrrpAction.STOP });
    await a.cleanup();
    a = await start();
    assert.equal((await a.ctx.keepalived.status()).running, false, "stopped through the agent: not restarted");
  });

  test("a configured namespace that does not exist is created at start only when there are plugs to restore", async () => {
    const fresh = topo.reserveName();
    const dir = mkdtempSync(join(tmpdir(), "amphora-restore-"));
    try {
      // Nothing ever plugged: the start creates no namespace (the first plug will).
      let b = await startTestAgent({ stateDir: dir, overrides: { netns: fresh } });
      await b.cleanup();
      assert.equal(existsSync(`/run/netns/${fresh}`), false);
      // A recorded plug (the machine rebooted: the namespace is gone) brings it back at start.
      mkdirSync(join(dir, "network"), { recursive: true });
      writeFileSync(join(dir, "network", "plugged.json"), JSON.stringify({ version: 1, interfaces: { "02:a5:00:00:0e:01": {} } }));
      b = await startTestAgent({ stateDir: dir, overrides: { netns: fresh } });
      await b.cleanup();
      assert.ok(existsSync(`/run/netns/${fresh}`));
      const lo = await topo.ip<{ flags: string[] }[]>(fresh, ["link", "show", "dev", "lo"]);
      assert.ok(lo[0]!.flags.includes("UP"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
