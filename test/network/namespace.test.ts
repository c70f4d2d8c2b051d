// The load-balancer namespace: Octavia's `amphora-haproxy` unless configured
// otherwise (dev mode: the agent's own), created by the first plug as
// Octavia's agent does. Namespaces here are amt- names the test removes.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDevPki } from "../../src/agent/dev-pki.js";
import { buildConfig } from "../../src/agent/agent.js";
import { defaultConfig } from "../../src/config/config.js";
import { NetworkPlumbing } from "../../src/network/plumbing.js";
import { silentLogger } from "../../src/log.js";
import { Topology, ipv4Of } from "./netns.js";

test("outside dev mode the namespace defaults to Octavia's amphora-haproxy; dev mode and the option override it", async (t) => {
  assert.equal(defaultConfig().netns, "amphora-haproxy");
  assert.equal(defaultConfig(undefined, { dev: true }).netns, "");
  const dir = mkdtempSync(join(tmpdir(), "amt-ns-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "agent.conf");
  // Real TLS files: buildConfig checks the configuration as a start would.
  const pki = (await ensureDevPki(join(dir, "pki"), "0b6a3c3e-8f0e-4f57-9a1e-3c8d7c1f2a55")).paths;
  const base = [
    "[haproxy_amphora]", `base_path = ${dir}`, "bind_host = 127.0.0.1",
    "[amphora_agent]", `agent_server_ca = ${pki.ca}`, `agent_server_cert = ${pki.serverBundle}`, "amphora_id = 0b6a3c3e-8f0e-4f57-9a1e-3c8d7c1f2a55",
  ];
  writeFileSync(file, base.join("\n") + "\n");
  assert.equal((await buildConfig({ configFile: file })).config.netns, "amphora-haproxy");
  writeFileSync(file, [...base, "amphora_network_namespace = amt-own"].join("\n") + "\n");
  assert.equal((await buildConfig({ configFile: file })).config.netns, "amt-own");
});

describe("the first plug creates the namespace", () => {
  const topo = new Topology();
  const stateDir = mkdtempSync(join(tmpdir(), "amt-ns-"));
  after(async () => {
    await topo.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("plug VIP into a namespace that does not exist yet creates it and moves the port in", async () => {
    const host = await topo.netns();
    const peer = await topo.netns();
    const lb = topo.reserveName();
    const MAC = "02:a5:00:00:0d:01";
    await topo.veth(host, "ens8", peer, "p1", { macA: MAC });
    const plumbing = new NetworkPlumbing(lb, stateDir, () => "SINGLE", silentLogger, host);
    assert.equal(existsSync(`/run/netns/${lb}`), false);
    const r = await plumbing.plugVip({ vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", macAddress: MAC, vrrpIp: "", hostRoutes: [], additionalVips: [] });
    assert.equal(r.ifname, "eth1", "named as Octavia's agent names the VIP port");
    assert.ok(existsSync(`/run/netns/${lb}`));
    assert.deepEqual(await ipv4Of(topo, lb, "eth1"), ["192.0.2.10/24"]);
    const lo = await topo.ip<{ flags: string[] }[]>(lb, ["link", "show", "dev", "lo"]);
    assert.ok(lo[0]!.flags.includes("UP"));
  });
});

test("before the first plug (no namespace yet) an interface lookup and a rules upload answer 404 JSON, not 500", async (t) => {
  const { startTestAgent } = await import("../support/agent.js");
  const { RestClient } = await import("../transport/rest/https-client.js");
  const netns = `amt-none-${process.pid}`;
  assert.equal(existsSync(`/run/netns/${netns}`), false);
  const agent = await startTestAgent({ overrides: { netns } });
  const client = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(async () => {
    client.close();
    await agent.cleanup();
  });
  const r = await client.request("GET", "/1.0/interface/198.51.100.5");
  assert.equal(r.status, 404, r.text);
  assert.equal(r.json<{ message: string }>().message, "Error interface not found for IP address");
  const rules = await client.request("PUT", "/1.0/interface/198.51.100.5/rules", { json: [{ protocol: "TCP", cidr: null, port: 80 }] });
  assert.equal(rules.status, 404, rules.text);
  assert.equal(existsSync(`/run/netns/${netns}`), false, "a lookup creates no namespace");
});
