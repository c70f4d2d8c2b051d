// The order in which an Octavia controller drives an amphora, over the
// REST paths on one HTTP/1.1 keep-alive TLS 1.2 connection, against a real
// agent and real haproxy on loopback: info -> certificate (skipped when its
// md5 already matches) -> config -> start -> listeners ACTIVE -> traffic,
// later a changed config -> reload, then a listener deleted (config without
// it + reload), its certificate deleted, and finally the load balancer.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import https from "node:https";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestAgent, type TestAgent } from "../../support/agent.js";
import {
  freePort, httpGet, killHaproxiesUnder, octaviaConfig, selfSignedPem, startBackend, type Backend, type ListenerSpec, type TestPem,
} from "../../support/haproxy.js";
import { RestClient } from "./https-client.js";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

let agent: TestAgent;
let ctl: RestClient;
let runDir = "";
let backends: Backend[] = [];
let pem: TestPem;

before(async () => {
  runDir = mkdtempSync(join(tmpdir(), "amt-rest-flow-"));
  agent = await startTestAgent();
  ctl = new RestClient(agent.url, agent, agent.config.amphoraId);
  backends = await Promise.all([startBackend("member-a"), startBackend("member-b")]);
  pem = await selfSignedPem(runDir, "lb.example");
});
after(async () => {
  ctl?.close();
  // The agent first (it would restart a haproxy that dies while it runs), then its haproxy.
  await agent?.cleanup();
  if (agent) await killHaproxiesUnder(agent.stateDir);
  await Promise.all(backends.map((b) => b.close()));
  if (runDir) rmSync(runDir, { recursive: true, force: true });
});

function httpsGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, path: "/", ca: pem.cert, servername: "lb.example", agent: false, timeout: 3000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

test("a controller's sequence: info, certificate, config, start, traffic, reload, delete listener, delete certificate", async () => {
  const amphoraId = agent.config.amphoraId;
  const lbId = randomUUID();
  const [a, b] = backends;

  // 1. What is this amphora?
  const info = await ctl.request("GET", "/info");
  assert.equal(info.status, 200);
  assert.equal(info.json<{ api_version: string }>().api_version, "1.0");

  // 2. The TLS listener's certificate: uploaded only when the stored md5 differs.
  const certFile = "tls-listener.pem";
  const certUrl = `/1.0/loadbalancer/${lbId}/certificates/${certFile}`;
  const uploadIfChanged = async (): Promise<boolean> => {
    const have = await ctl.request("GET", certUrl);
    if (have.status === 200 && have.json<{ md5sum: string }>().md5sum === md5(pem.bundle)) return false;
    assert.equal(have.status, 404);
    const put = await ctl.request("PUT", certUrl, { body: pem.bundle });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.headers.etag, md5(pem.bundle));
    return true;
  };
  assert.equal(await uploadIfChanged(), true, "first time: uploaded");
  assert.equal(await uploadIfChanged(), false, "same md5: skipped");

  // 3. The config: an HTTP listener to member a, a TERMINATED_HTTPS one to member b.
  const [httpPort, tlsPort] = [await freePort(), await freePort()];
  const crt = join(agent.config.certDir, lbId, certFile);
  const http: ListenerSpec = { id: randomUUID(), port: httpPort, members: [{ port: a!.port }] };
  const tls: ListenerSpec = { id: randomUUID(), port: tlsPort, crt, members: [{ port: b!.port }] };
  const put = async (listeners: ListenerSpec[]) => {
    const text = octaviaConfig({ lbId, runDir, listeners }).text;
    const r = await ctl.request("PUT", `/1.0/loadbalancer/${amphoraId}/${lbId}/haproxy`, { body: text });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json<{ message: string }>().message, "OK");
    assert.equal(r.headers.etag, md5(text));
    return text;
  };
  await put([http, tls]);

  // 4. Start; both listeners ACTIVE; traffic flows.
  const start = await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/start`);
  assert.equal(start.status, 202, start.text);
  const listeners = async () =>
    (await ctl.request("GET", "/1.0/listeners")).json<{ uuid: string; status: string; type: string }[]>()
      .map((l) => `${l.uuid} ${l.type} ${l.status}`).sort();
  assert.deepEqual(await listeners(), [`${http.id} HTTP ACTIVE`, `${tls.id} TERMINATED_HTTPS ACTIVE`].sort());
  assert.equal((await httpGet(httpPort)).body, "member-a");
  assert.equal(await httpsGet(tlsPort), "member-b");

  // 5. Later: the HTTP listener's pool moves to member b; upload + reload.
  await put([{ ...http, members: [{ port: b!.port }] }, tls]);
  assert.equal((await httpGet(httpPort)).body, "member-a", "an upload alone does not reload");
  assert.equal((await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/reload`)).status, 202);
  assert.equal((await httpGet(httpPort)).body, "member-b");

  // 6. Delete the TLS listener: config without it, reload.
  const last = await put([{ ...http, members: [{ port: b!.port }] }]);
  assert.equal((await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/reload`)).status, 202);
  assert.deepEqual(await listeners(), [`${http.id} HTTP ACTIVE`]);
  // The old worker closes its listeners once the master tells it to, just
  // after the reload is confirmed: the removed port stops answering soon,
  // not necessarily at once.
  const closedBy = Date.now() + 10_000;
  while (await httpsGet(tlsPort).then(() => true, () => false)) {
    assert.ok(Date.now() < closedBy, "the deleted TLS listener still answers 10 s after the reload");
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await httpGet(httpPort)).body, "member-b");
  const cfg = await ctl.request("GET", `/1.0/loadbalancer/${lbId}/haproxy`);
  assert.equal(cfg.text, last);

  // 7. Its certificate is no longer used: delete it.
  assert.equal((await ctl.request("DELETE", certUrl)).status, 200);
  assert.equal((await ctl.request("GET", certUrl)).status, 404);

  // 8. The load balancer goes away; a second delete is fine too.
  assert.equal((await ctl.request("DELETE", `/1.0/listeners/${lbId}`)).status, 200);
  assert.equal((await ctl.request("DELETE", `/1.0/listeners/${lbId}`)).status, 200);
  assert.deepEqual(await listeners(), []);
  await assert.rejects(httpGet(httpPort, "/", "127.0.0.1", 500));

  // All of it on one keep-alive connection.
  assert.equal(ctl.connections, 1);
});
