// An agent configuration update can no longer brick the amphora (issue 15
// item 3). With the real agent program started from an Octavia-style
// amphora-agent.conf (not dev mode), restarted as a reboot would:
// - PUT /1.0/config naming a missing CA, an unreadable certificate, a key
//   that does not match, or an address of another machine is refused (500,
//   Octavia's message) and the file stays as it was; a good update is stored;
// - a configuration file that cannot start the agent (edited, or a file it
//   names went missing) makes the next start fall back to the last
//   configuration that started, and says so: the log, GetInfo/GetDetails
//   config_warning, and the amphora_agent_config_fallback metric.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createCa, issueCertificate } from "../../src/agent/dev-pki.js";
import { runChecked } from "../../src/system/exec.js";
import { freePort, killHaproxiesUnder } from "../support/haproxy.js";
import { RestClient } from "../transport/rest/https-client.js";

async function keyAndCert(ca: Awaited<ReturnType<typeof createCa>>, dir: string, name: string, cn: string, client = false) {
  const key = join(dir, `${name}-key.pem`);
  const crt = join(dir, `${name}.pem`);
  await runChecked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
  await issueCertificate(ca, { keyPath: key, certPath: crt, cn, sans: client ? [] : [cn, "127.0.0.1"], client });
  return { key: readFileSync(key, "utf8"), cert: readFileSync(crt, "utf8") };
}

test("a config update the agent could not start with is refused; a stored config that cannot start it falls back to the last one that did, reported in log, GetInfo and metrics (real agent process, restarted)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "amt-cfg-rec-"));
  const state = join(dir, "state");
  let child: ChildProcess | undefined;
  let stderr = "";
  t.after(async () => {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await killHaproxiesUnder(state);
    rmSync(dir, { recursive: true, force: true });
  });
  const ca = await createCa(join(dir, "pki"), "amt test CA");
  const amphoraId = randomUUID();
  const server = await keyAndCert(ca, dir, "server", amphoraId);
  const client = await keyAndCert(ca, dir, "client", "controller", true);
  const bundle = join(dir, "server-bundle.pem");
  writeFileSync(bundle, server.key + server.cert, { mode: 0o600 });
  const port = await freePort();
  const conf = join(dir, "amphora-agent.conf");
  const good = [
    "[haproxy_amphora]", `base_path = ${state}`, "bind_host = 127.0.0.1", `bind_port = ${port}`,
    "[amphora_agent]", `agent_server_ca = ${ca.ca}`, `agent_server_cert = ${bundle}`, `amphora_id = ${amphoraId}`, "amphora_network_namespace =",
    "[health_manager]", "heartbeat_interval = 10", "",
  ].join("\n");
  writeFileSync(conf, good);

  const start = async () => {
    stderr = "";
    child = spawn(process.execPath, ["--import", "tsx", "src/agent/main.ts", "--config", conf, "--log-level", "warn"], { stdio: ["ignore", "pipe", "pipe"] });
    // The log (JSON lines) goes to stdout, a failed start to stderr.
    child.stdout!.on("data", (c) => (stderr += c));
    child.stderr!.on("data", (c) => (stderr += c));
    const rest = new RestClient(`https://127.0.0.1:${port}`, { ca: readFileSync(ca.ca, "utf8"), ...client }, amphoraId);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`agent exited ${child.exitCode}: ${stderr}`);
      const r = await rest.request("GET", "/1.0/info").catch(() => undefined);
      if (r?.status === 200) return rest;
      await sleep(100);
    }
    throw new Error(`agent did not come up: ${stderr}`);
  };
  const stop = async () => {
    const c = child!;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    await exited;
  };

  let rest = await start();
  // Updates a start could not use: refused, the file unchanged.
  const wrongKey = join(dir, "wrong-bundle.pem");
  writeFileSync(wrongKey, client.key + server.cert, { mode: 0o600 });
  for (const [bad, why] of [
    [good.replace(`agent_server_ca = ${ca.ca}`, "agent_server_ca = /nonexistent/ca.pem"), /agent_server_ca \/nonexistent\/ca\.pem cannot be read/],
    [good.replace(`agent_server_cert = ${bundle}`, `agent_server_cert = ${join(dir, "missing.pem")}`), /agent_server_cert .*missing\.pem cannot be read/],
    [good.replace(`agent_server_cert = ${bundle}`, `agent_server_cert = ${wrongKey}`), /do not match/],
    [good.replace("bind_host = 127.0.0.1", "bind_host = 203.0.113.77"), /bind_host 203\.0\.113\.77 is not an address of this machine/],
    [good + "[amphora_agent]\nconfig_policy = off\n", /only an operator may change configPolicy/],
  ] as const) {
    const r = await rest.request("PUT", "/1.0/config", { body: bad });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json<{ message: string }>().message, "Unable to update amphora-agent configuration.");
    assert.match(r.json<{ details: string }>().details, why);
    assert.equal(readFileSync(conf, "utf8"), good, "the stored file is unchanged");
  }
  // A good update is stored.
  const better = good.replace("heartbeat_interval = 10", "heartbeat_interval = 5");
  const ok = await rest.request("PUT", "/1.0/config", { body: better });
  assert.equal(ok.status, 202, ok.text);
  assert.equal(readFileSync(conf, "utf8"), better);
  assert.equal(readFileSync(`${conf}.last-good`, "utf8"), good, "the file the agent started with is kept");
  rest.close();
  await stop();

  // The file now cannot start the agent (say its CA went missing, or an operator's typo).
  writeFileSync(conf, better.replace(`agent_server_ca = ${ca.ca}`, "agent_server_ca = /nonexistent/ca.pem"));
  rest = await start();
  t.after(() => rest.close());
  const info = (await rest.request("GET", "/1.0/info")).json<{ config_warning: string }>();
  assert.match(info.config_warning, /could not start the agent \(agent_server_ca \/nonexistent\/ca\.pem cannot be read.*\); running on the last configuration that did: .*amphora-agent\.conf\.last-good/);
  const details = (await rest.request("GET", "/1.0/details")).json<{ config_warning: string }>();
  assert.equal(details.config_warning, info.config_warning);
  assert.match((await rest.request("GET", "/metrics")).text, /\namphora_agent_config_fallback 1\n/);
  assert.match(stderr, /the configuration file cannot start the agent; started with the last configuration that did/);
});
