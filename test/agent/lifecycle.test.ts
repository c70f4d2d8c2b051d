// Start and stop of the assembled agent: a failed start leaves nothing
// running, and a configuration update survives a restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { setTimeout as sleep } from "node:timers/promises";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent } from "../../src/agent/agent.js";
import { silentLogger } from "../../src/log.js";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { startTestAgent } from "../support/agent.js";

test("a start that fails (port in use) leaves nothing running: no heartbeat is ever sent", async (t) => {
  const state = mkdtempSync(join(tmpdir(), "amphora-test-"));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const squatter = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => squatter.once("listening", r));
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));
  const port = (squatter.address() as { port: number }).port;
  // A health manager that counts datagrams: a heartbeat sender left running
  // by the failed start would send one every second.
  const hm = createSocket("udp4");
  let datagrams = 0;
  hm.on("message", () => datagrams++);
  await new Promise<void>((r) => hm.bind(0, "127.0.0.1", () => r()));
  t.after(() => hm.close());
  const overrides = { heartbeatTargets: [{ host: "127.0.0.1", port: hm.address().port }], heartbeatIntervalS: 1, heartbeatKey: "k" };
  await assert.rejects(
    startAgent({ dev: true, stateDir: state, listen: `127.0.0.1:${port}`, logger: silentLogger, overrides }),
    /EADDRINUSE/,
  );
  await sleep(3500);
  assert.equal(datagrams, 0, "a heartbeat sender outlived the failed start");
});

test("an agent configuration update without --config is kept in the state dir and read at the next start", async (t) => {
  const state = mkdtempSync(join(tmpdir(), "amphora-test-"));
  t.after(() => rmSync(state, { recursive: true, force: true }));
  const a = await startTestAgent({ stateDir: state });
  t.after(() => a.cleanup());
  const r = await a.client(SystemService).updateAgentConfig({
    config: "[health_manager]\ncontroller_ip_port_list = 192.0.2.10:5555\nheartbeat_interval = 3\nheartbeat_key = k\n",
  });
  assert.equal(r.message, "OK");
  assert.equal(a.ctx.config.current.heartbeatIntervalS, 3);
  await a.cleanup();
  const b = await startTestAgent({ stateDir: state });
  t.after(() => b.cleanup());
  assert.deepEqual(b.config.heartbeatTargets, [{ host: "192.0.2.10", port: 5555 }]);
  assert.equal(b.config.heartbeatIntervalS, 3);
  assert.equal(b.config.heartbeatKey, "k");
});

test("concurrent configuration updates end with memory and file agreeing", async (t) => {
  const a = await startTestAgent();
  t.after(() => a.cleanup());
  const sys = a.client(SystemService);
  const conf = (n: number) => `[health_manager]\ncontroller_ip_port_list = 192.0.2.${n}:5555\nheartbeat_interval = ${n}\n`;
  await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((n) => sys.updateAgentConfig({ config: conf(n) })));
  const onDisk = readFileSync(join(a.stateDir, "amphora-agent.conf"), "utf8");
  const n = a.ctx.config.current.heartbeatIntervalS;
  assert.equal(onDisk, conf(n));
  assert.deepEqual(a.ctx.config.current.heartbeatTargets, [{ host: `192.0.2.${n}`, port: 5555 }]);
});
