// UpdateAgentConfig (PUT /1.0/config) and what the next start reads: the
// controller's rendering never has the agent-local options an operator put
// in the file (amphora_network_namespace); they must survive an update, and
// the answer must name every option a restart would change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { ConfigStore, keepLocalOptions } from "../../src/config/config-store.js";
import { applyIni, defaultConfig, loadConfigFile, type AgentConfig } from "../../src/config/config.js";
import { ensureDevPki } from "../../src/agent/dev-pki.js";
import { silentLogger } from "../../src/log.js";
import { run } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";

// What Octavia's controller renders (its template has no namespace option).
const RENDERED = `[DEFAULT]
debug = False

[haproxy_amphora]
bind_host = 0.0.0.0
bind_port = 9443

[health_manager]
controller_ip_port_list = 192.0.2.10:5555
heartbeat_interval = 7
heartbeat_key = k

[amphora_agent]
amphora_id = 6f1e0b1a-9d9b-4a7b-8a42-2c5d4c3e2f10
`;

/** Gives `cfg` the dev PKI's CA and server bundle (made in `dir`), as the dev start fills them in. */
async function withTls(cfg: AgentConfig, dir: string): Promise<void> {
  const p = (await ensureDevPki(join(dir, "pki"), "6f1e0b1a-9d9b-4a7b-8a42-2c5d4c3e2f10")).paths;
  cfg.serverCaFile = p.ca;
  cfg.serverCertFile = p.serverBundle;
}

test("agent-local options the upload lacks are kept in the written file; ones it sets win", () => {
  const stored = "[amphora_agent]\namphora_network_namespace = amphora-haproxy\namphora_id = x\n";
  const r = keepLocalOptions(stored, RENDERED);
  assert.deepEqual(r.kept, ["amphora_agent.amphora_network_namespace"]);
  assert.ok(r.text.startsWith(RENDERED));
  assert.equal(applyIni(defaultConfig("/s"), r.text, "f").config.netns, "amphora-haproxy");
  // Only agent-local options: an Octavia option the controller stopped rendering is not resurrected.
  assert.deepEqual(keepLocalOptions("[haproxy_amphora]\nbind_port = 1234\n", RENDERED).kept, []);
  const own = keepLocalOptions(stored, "[amphora_agent]\namphora_network_namespace = other\n");
  assert.deepEqual(own.kept, []);
  assert.equal(applyIni(defaultConfig("/s"), own.text, "f").config.netns, "other");
});

test("an update keeps amphora_network_namespace for the next start and names options a restart would change", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amt-cfg-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "amphora-agent.conf");
  writeFileSync(file, `[haproxy_amphora]\nbase_path = ${dir}\nbind_port = 9444\n[amphora_agent]\namphora_network_namespace = amt-keep\n`);
  const live = loadConfigFile(defaultConfig(dir), file).config;
  live.certDir = join(dir, "certs");
  // TLS material from flags, as a start that could run has (an update is checked as a start would).
  await withTls(live, dir);
  const store = new ConfigStore(live, file, silentLogger);
  const r = await store.update(RENDERED);
  assert.deepEqual(r.kept, ["amphora_agent.amphora_network_namespace"]);
  assert.deepEqual(r.applied.sort(), ["heartbeatIntervalS", "heartbeatKey", "heartbeatTargets"]);
  // bind_port changes (9444 -> 9443) and amphora_id appears; base_path is gone
  // from the file (the next start falls back to the default state dir).
  assert.deepEqual(r.restartNeeded.sort(), ["amphoraId", "bindPort", "certDir", "stateDir"]);
  const next = loadConfigFile(defaultConfig(), file).config;
  assert.equal(next.netns, "amt-keep");
  assert.equal(next.heartbeatIntervalS, 7);
});

test("--dev: an update that sets amphora_network_namespace names it as needing a restart (dev's default is no namespace)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amt-cfg-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "amphora-agent.conf");
  // As buildConfig makes it for --dev --state-dir DIR without a file.
  const live = { ...defaultConfig(dir, { dev: true }), certDir: join(dir, "certs") };
  await withTls(live, dir);
  assert.equal(live.netns, "");
  const store = new ConfigStore(live, file, silentLogger, { dev: true });
  const r = await store.update("[amphora_agent]\namphora_network_namespace = amt-dev\n");
  assert.deepEqual(r.restartNeeded, ["netns"]);
  assert.equal(store.current.netns, "", "not applied live");
  // A --dev start with that file would use it.
  assert.equal(loadConfigFile(defaultConfig(dir, { dev: true }), file).config.netns, "amt-dev");
});

test("through the agent: the namespace set in the stored file survives a controller's update and the restart", async (t) => {
  const state = mkdtempSync(join(tmpdir(), "amphora-test-"));
  const ns = `amt-${randomBytes(4).toString("hex")}`;
  let a: TestAgent | undefined;
  let b: TestAgent | undefined;
  // One hook, in order: the agents, then what they used.
  t.after(async () => {
    await b?.cleanup();
    await a?.cleanup();
    await run("ip", ["netns", "del", ns]);
    rmSync(state, { recursive: true, force: true });
  });
  writeFileSync(join(state, "amphora-agent.conf"), `[amphora_agent]\namphora_network_namespace = ${ns}\n`);
  a = await startTestAgent({ stateDir: state });
  assert.equal(a.config.netns, ns);
  const res = await a.client(SystemService).updateAgentConfig({ config: RENDERED.replace(/^amphora_id = .*$/m, `amphora_id = ${a.config.amphoraId}`) });
  assert.equal(res.message, "OK");
  assert.match(res.details, /kept agent-local options: amphora_agent\.amphora_network_namespace/);
  assert.match(readFileSync(join(state, "amphora-agent.conf"), "utf8"), new RegExp(`amphora_network_namespace = ${ns}`));
  await a.cleanup();
  b = await startTestAgent({ stateDir: state });
  assert.equal(b.config.netns, ns, "namespace kept after the restart");
  assert.equal(b.config.heartbeatIntervalS, 7);
});
