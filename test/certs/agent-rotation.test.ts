// RotateAgentCertificate: the agent's own server certificate changes for
// NEW connections while an established HTTP/2 connection keeps working
// (Octavia restarts its agent for this; we must not).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { connect as h2connect, type ClientHttp2Session } from "node:http2";
import type { TLSSocket } from "node:tls";
import { Code, ConnectError } from "@connectrpc/connect";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { issueCertificate } from "../../src/agent/dev-pki.js";
import { runChecked } from "../../src/system/exec.js";

function session(agent: TestAgent): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(agent.url, { ca: agent.ca, cert: agent.cert, key: agent.key });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** One Connect-JSON unary call on an existing HTTP/2 session. */
function getApiVersion(s: ClientHttp2Session): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = s.request({ ":method": "POST", ":path": "/amphora.v1.SystemService/GetApiVersion", "content-type": "application/json" });
    let status = 0;
    let body = "";
    req.on("response", (h) => (status = Number(h[":status"])));
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => resolve({ status, body }));
    req.on("error", reject);
    req.end("{}");
  });
}

const peerFingerprint = (s: ClientHttp2Session) => (s.socket as TLSSocket).getPeerX509Certificate()!.fingerprint256;

test("a rotated agent certificate is served to new connections; an established HTTP/2 connection keeps working", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "amt-rot-"));
  const agent = await startTestAgent();
  const sessions: ClientHttp2Session[] = [];
  t.after(async () => {
    for (const s of sessions) s.destroy();
    await agent.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });
  const pki = agent.pki!;
  const oldFp = new X509Certificate(readFileSync(pki.serverCert)).fingerprint256;

  const before = await session(agent);
  sessions.push(before);
  assert.equal((await getApiVersion(before)).status, 200);
  assert.equal(peerFingerprint(before), oldFp);
  // A ClientHttp2Session is one TCP+TLS connection and never reconnects.
  let beforeClosed = false;
  before.on("close", () => (beforeClosed = true));

  // A new key and certificate from the same CA, same amphora id.
  const key = join(tmp, "new-key.pem");
  const crt = join(tmp, "new.pem");
  await runChecked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
  await issueCertificate(pki, { keyPath: key, certPath: crt, cn: agent.config.amphoraId, sans: [agent.config.amphoraId, "127.0.0.1", "localhost"] });
  const newPem = readFileSync(key, "utf8") + readFileSync(crt, "utf8");
  const newFp = new X509Certificate(readFileSync(crt)).fingerprint256;
  assert.notEqual(newFp, oldFp);

  const sys = agent.client(SystemService, "connect-json");
  // A bad bundle is refused and changes nothing.
  const bad = await sys.rotateAgentCertificate({ pem: readFileSync(crt, "utf8") }).then(() => undefined, (e) => ConnectError.from(e));
  assert.equal(bad?.code, Code.InvalidArgument);
  const stillOld = await session(agent);
  sessions.push(stillOld);
  assert.equal(peerFingerprint(stillOld), oldFp);

  await sys.rotateAgentCertificate({ pem: newPem });

  const after = await session(agent);
  sessions.push(after);
  assert.equal(peerFingerprint(after), newFp, "new connections get the new certificate");
  assert.equal((await getApiVersion(after)).status, 200);

  // The connection made before the rotation is still open and still serves calls.
  for (let i = 0; i < 3; i++) assert.equal((await getApiVersion(before)).status, 200);
  assert.equal(beforeClosed || before.closed || before.destroyed, false, "same connection as before the rotation");
  // Persisted for the next start.
  assert.equal(new X509Certificate(readFileSync(agent.config.serverCertFile)).fingerprint256, newFp);
});
