// The agent as a process: the installed bin in --dev mode, PKI reuse,
// the config file, and graceful shutdown on SIGTERM.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import https from "node:https";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { run } from "../../src/system/exec.js";
import { startProcess } from "../support/agent-process.js";

const dirs: string[] = [];
const procs: ChildProcess[] = [];
after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "amphora-proc-"));
  dirs.push(d);
  return d;
}

function get(url: string, pki: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: "POST", headers: { "content-type": "application/json" }, agent: false,
      ca: readFileSync(join(pki, "ca.pem")), cert: readFileSync(join(pki, "client.pem")), key: readFileSync(join(pki, "client-key.pem")),
    }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("error", reject);
    req.end("{}");
  });
}

test("--dev makes a PKI, prints a curl command, reuses the PKI, and exits cleanly on SIGTERM", async () => {
  const state = tempDir();
  const a = await startProcess(["--dev", "--state-dir", state, "--listen", "127.0.0.1:0"]);
  const pki = join(state, "pki");
  for (const f of ["ca.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"]) assert.ok(statSync(join(pki, f)).size > 0, f);
  assert.equal(statSync(join(pki, "server-key.pem")).mode & 0o077, 0, "private key not readable by others");
  const r = await get(`${a.url}/amphora.v1.SystemService/GetInfo`, pki);
  assert.equal(r.status, 200);
  const id = JSON.parse(r.body).amphoraId;
  // Wait for the banner before checking it.
  const bannerBy = Date.now() + 20_000;
  while (!a.stderr().includes("curl --cacert")) {
    assert.ok(Date.now() < bannerBy, `no curl banner on stderr within 20 s: ${a.stderr()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
  assert.match(a.stderr(), new RegExp(`curl --cacert ${pki}/ca.pem --cert ${pki}/client.pem --key ${pki}/client-key.pem`));
  const caBefore = readFileSync(join(pki, "ca.pem"), "utf8");
  a.proc.kill("SIGTERM");
  const [code] = await once(a.proc, "exit");
  assert.equal(code, 0);

  const b = await startProcess(["--dev", "--state-dir", state, "--listen", "127.0.0.1:0"]);
  assert.equal(readFileSync(join(pki, "ca.pem"), "utf8"), caBefore, "PKI reused");
  assert.equal(JSON.parse((await get(`${b.url}/amphora.v1.SystemService/GetInfo`, pki)).body).amphoraId, id, "amphora id reused");
  b.proc.kill("SIGINT");
  assert.equal((await once(b.proc, "exit"))[0], 0);
});

test("a config file is used, flags override it, and a bad value stops the start with file, line and option", async (t) => {
  const state = tempDir();
  // Build a dev PKI first, then run with a config file that points at it.
  const a = await startProcess(["--dev", "--state-dir", state, "--listen", "127.0.0.1:0"]);
  a.proc.kill("SIGTERM");
  await once(a.proc, "exit");
  const pki = join(state, "pki");
  const conf = join(state, "agent.conf");
  const ns = `amt-${randomBytes(4).toString("hex")}`;
  t.after(() => run("ip", ["netns", "del", ns]));
  writeFileSync(conf, [
    "[haproxy_amphora]", `base_path = ${state}`, "bind_host = 127.0.0.1", "bind_port = 1",
    "[amphora_agent]", `agent_server_ca = ${pki}/ca.pem`, `agent_server_cert = ${pki}/server-bundle.pem`,
    "amphora_id = 0b6a3c3e-8f0e-4f57-9a1e-3c8d7c1f2a55", "agent_tls_protocol = TLSv1.2",
    // Not dev mode: the default would be the host's amphora-haproxy namespace.
    `amphora_network_namespace = ${ns}`, "",
  ].join("\n"));
  const b = await startProcess(["--config", conf, "--listen", "127.0.0.1:0"]);
  const info = JSON.parse((await get(`${b.url}/amphora.v1.SystemService/GetInfo`, pki)).body);
  assert.equal(info.amphoraId, "0b6a3c3e-8f0e-4f57-9a1e-3c8d7c1f2a55");
  b.proc.kill("SIGTERM");
  await once(b.proc, "exit");

  writeFileSync(conf, readFileSync(conf, "utf8").replace("bind_port = 1", "bind_port = banana"));
  // With the copy of the file that started the agent, the start would fall back to it
  // (test/agent/config-recovery.test.ts); without one, the bad value stops the start.
  rmSync(`${conf}.last-good`, { force: true });
  const bad = spawn(process.execPath, ["bin/amphora-agent.js", "--config", conf], { stdio: ["ignore", "pipe", "pipe"] });
  procs.push(bad);
  let err = "";
  bad.stderr!.on("data", (c) => (err += c));
  const [code] = await once(bad, "exit");
  assert.equal(code, 1);
  assert.match(err, new RegExp(`${conf}:4: option \\[haproxy_amphora\\] bind_port: expected an integer`));
});
