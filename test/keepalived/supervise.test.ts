// Supervision of keepalived (no systemd here): a keepalived that dies while
// it should run is started again; one stopped on purpose is left stopped.
// Uses the domain class directly with a short interval, in a test namespace.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRunning } from "../../src/keepalived/pid.js";
import { KeepalivedVrrp } from "../../src/keepalived/vrrp.js";
import { Topology, eventually } from "../network/netns.js";
import { vrrpConfig } from "./support.js";

describe("keepalived supervision", () => {
  const topo = new Topology();
  const stateDir = mkdtempSync(join(tmpdir(), "amphora-supervise-"));
  let k: KeepalivedVrrp;
  let end = () => {};

  before(async () => {
    const ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "192.0.2.11/24", "dev", "eth1"]);
    k = new KeepalivedVrrp(stateDir, ns);
    await k.upload(vrrpConfig({ routerId: "amt_s", state: "MASTER", priority: 100, iface: "eth1", src: "192.0.2.11", peer: "192.0.2.12", vips: ["192.0.2.10/32"] }));
  });
  after(async () => {
    end();
    await k?.stop().catch(() => {});
    await topo.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("a keepalived that died is started again; a stopped one stays stopped", async () => {
    const first = (await k.start()).pid!;
    end = k.supervise(100);
    process.kill(first, "SIGKILL");
    assert.ok(await eventually(async () => {
      const st = await k.status();
      return st.running && st.pid !== first;
    }, 10_000), "restarted after dying");
    assert.equal(await isRunning(first, "keepalived"), false);

    const second = (await k.status()).pid!;
    await k.stop();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await k.status()).running, false, "stopped on purpose: not restarted");
    assert.equal(await isRunning(second, "keepalived"), false);
  });
});
