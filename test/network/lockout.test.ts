// Lock-out by plugging: a real agent process runs inside a test namespace
// (its "host" namespace) whose interface mgmt0 carries the address the
// controller reaches it on; the controller is curl in the same namespace.
// Plugging mgmt0 (VIP or network) is refused with 409 and nothing moves,
// with a specific listen address and with a wildcard one (then the address
// of the controller's connection counts); a recorded plug of mgmt0 is not
// restored at start (logged, GetDetails warning, metric). A bare port is
// still plugged as before. The load-balancer namespace is created by the
// test beforehand: an agent under `ip netns exec` cannot create one that is
// visible outside its private mount namespace (platform-notes).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { run } from "../../src/system/exec.js";
import { startProcess, type AgentProcess } from "../support/agent-process.js";
import { Topology, ipv4Of } from "./netns.js";

const MGMT_MAC = "02:a5:00:00:01:01";
const PORT_MAC = "02:a5:00:00:01:02";
const MGMT_IP = "192.0.2.1";

describe("plugging never takes the interface the agent is reached on", () => {
  const topo = new Topology();
  let host = "";
  let lbNs = "";
  let state = "";
  let agent: AgentProcess | undefined;

  before(async () => {
    host = await topo.netns();
    lbNs = await topo.netns();
    const far = await topo.netns();
    await topo.veth(host, "mgmt0", far, "c0", { macA: MGMT_MAC, up: true });
    await topo.sh(host, "ip", ["addr", "add", `${MGMT_IP}/24`, "dev", "mgmt0"]);
    await topo.veth(host, "eth1", far, "c1", { macA: PORT_MAC });
    state = mkdtempSync(join(tmpdir(), "faults-lockout-"));
    // Read by a --dev start from the state dir: the load-balancer namespace is the test's.
    writeFileSync(join(state, "amphora-agent.conf"), `[amphora_agent]\namphora_network_namespace = ${lbNs}\n`);
  });
  after(async () => {
    if (agent) await stop(agent);
    await topo.cleanup();
    rmSync(state, { recursive: true, force: true });
  });

  async function stop(a: AgentProcess) {
    if (a.proc.exitCode !== null || a.proc.signalCode !== null) return;
    const gone = once(a.proc, "exit");
    a.proc.kill("SIGTERM");
    await gone;
  }

  async function start(listen: string) {
    if (agent) await stop(agent);
    agent = await startProcess(["--dev", "--state-dir", state, "--listen", listen], { netns: host });
  }

  /** A controller's request, from the agent's namespace to the management address (server name localhost: in the dev certificate). */
  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: { message?: string; details?: string; warnings?: string[] } }> {
    const pki = join(state, "pki");
    const r = await run("curl", [
      "-sS", "--max-time", "60", "-X", method, "--resolve", `localhost:9443:${MGMT_IP}`,
      "--cacert", join(pki, "ca.pem"), "--cert", join(pki, "client.pem"), "--key", join(pki, "client-key.pem"),
      ...(body === undefined ? [] : ["-H", "content-type: application/json", "--data-binary", JSON.stringify(body)]),
      "-w", "\n%{http_code}", `https://localhost:9443${path}`,
    ], { netns: host, timeoutMs: 70_000 });
    assert.equal(r.exitCode, 0, `curl ${path}: ${r.stderr}`);
    const lines = r.stdout.split("\n");
    const status = Number(lines.pop());
    return { status, json: lines.join("\n") ? JSON.parse(lines.join("\n")) : {} };
  }

  const vipBody = (mac: string) => ({ subnet_cidr: "192.0.2.0/24", gateway: "192.0.2.254", mac_address: mac, vrrp_ip: "", host_routes: [] });

  async function mgmtIntact() {
    assert.deepEqual(await ipv4Of(topo, host, "mgmt0"), [`${MGMT_IP}/24`], "mgmt0 still in the agent's namespace with its address");
  }

  test("plug VIP and plug network of mgmt0 answer 409, with a specific and with a wildcard listen address; a bare port still plugs", async () => {
    await start(`${MGMT_IP}:9443`);
    const vip = await call("POST", "/1.0/plug/vip/192.0.2.50", vipBody(MGMT_MAC));
    assert.equal(vip.status, 409, JSON.stringify(vip.json));
    assert.equal(vip.json.message, "Error plugging VIP");
    assert.match(vip.json.details!, new RegExp(`refusing to plug mgmt0 \\(${MGMT_MAC}\\): it carries the agent's management address ${MGMT_IP}`));
    await mgmtIntact();

    // Listening on every address: the address this very request came in on is the management address.
    await start("0.0.0.0:9443");
    const net = await call("POST", "/1.0/plug/network", { mac_address: MGMT_MAC, fixed_ips: [{ ip_address: "192.0.2.60", subnet_cidr: "192.0.2.0/24" }] });
    assert.equal(net.status, 409, JSON.stringify(net.json));
    assert.match(net.json.details!, /carries the agent's management address 192\.0\.2\.1/);
    const vip2 = await call("POST", "/1.0/plug/vip/192.0.2.50", vipBody(MGMT_MAC));
    assert.equal(vip2.status, 409);
    await mgmtIntact();
    const recorded = existsSync(join(state, "network", "plugged.json")) ? readFileSync(join(state, "network", "plugged.json"), "utf8") : "{}";
    const plugged = JSON.parse(recorded) as { interfaces?: Record<string, unknown> };
    assert.equal(plugged.interfaces?.[MGMT_MAC], undefined, "nothing recorded");
  });

  test("a bare port is plugged as before, and a recorded plug of mgmt0 is not restored at start (logged, reported)", async () => {
    await start(`${MGMT_IP}:9443`);
    const ok = await call("POST", "/1.0/plug/vip/192.0.2.50", vipBody(PORT_MAC));
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    assert.deepEqual(await ipv4Of(topo, lbNs, "eth1"), ["192.0.2.50/24"]);
    await stop(agent!);

    // What an older agent recorded when it took mgmt0: the same plug, for mgmt0's MAC.
    const file = join(state, "network", "plugged.json");
    const st = JSON.parse(readFileSync(file, "utf8")) as { interfaces: Record<string, { spec: { macAddress: string }; ifname: string }> };
    const entry = structuredClone(st.interfaces[PORT_MAC]!);
    entry.spec.macAddress = MGMT_MAC;
    entry.ifname = "mgmt0";
    st.interfaces[MGMT_MAC] = entry;
    writeFileSync(file, JSON.stringify(st, null, 2));

    // With its address as the listen address, and listening on every address (Octavia's default "::"):
    // no connection exists yet at start, the wildcard makes every address of its namespace a management one.
    for (const listen of [`${MGMT_IP}:9443`, "[::]:9443"]) {
      await start(listen);
      await mgmtIntact();
      const info = await call("GET", "/1.0/info");
      assert.equal(info.status, 200, `${listen}: the controller still reaches the agent`);
      const details = await call("GET", "/1.0/details");
      assert.deepEqual(details.json.warnings, [`recorded plug of mgmt0 (${MGMT_MAC}) not restored: it carries the agent's management address ${MGMT_IP}`], listen);
      assert.match(agent!.stdout(), /"condition":"plug_not_restored"/);
      assert.deepEqual(await ipv4Of(topo, lbNs, "eth1"), ["192.0.2.50/24"], "the other recorded plug stays");
    }
  });
});
