// CertificateService over mTLS, and a TERMINATED_HTTPS listener that really
// serves the uploaded certificate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID, createHash, X509Certificate } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { Code } from "@connectrpc/connect";
import { startTestAgent } from "../support/agent.js";
import { freePort, octaviaConfig, selfSignedPem, killHaproxiesUnder, startBackend } from "../support/haproxy.js";
import { CertificateService } from "../../src/gen/amphora/v1/certificate_pb.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { CertificateStore } from "../../src/certs/store.js";
import { DomainError } from "../../src/errors.js";
import { rpcError } from "../support/lb-test.js";

test("certificate upload, md5, mode 0600, each rejection, delete", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "amt-certs-"));
  const agent = await startTestAgent();
  t.after(async () => {
    await agent.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });
  const certs = agent.client(CertificateService);
  const lbId = randomUUID();
  const a = await selfSignedPem(tmp, "a.example");
  const b = await selfSignedPem(tmp, "b.example");

  const put = await certs.putCertificate({ lbId, filename: "listener-1.pem", pem: a.bundle });
  const expected = createHash("md5").update(a.bundle).digest("hex");
  assert.equal(put.md5sum, expected);
  const file = join(agent.config.certDir, lbId, "listener-1.pem");
  assert.equal(readFileSync(file, "utf8"), a.bundle, "stored exactly as uploaded");
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal((await certs.getCertificateMd5({ lbId, filename: "listener-1.pem" })).md5sum, expected);

  const reject = async (pem: string, message: string, reason: string) => {
    const e = await rpcError(certs.putCertificate({ lbId, filename: "listener-1.pem", pem }));
    assert.equal(e.code, Code.InvalidArgument, message);
    assert.equal(e.rawMessage, message);
    assert.equal(e.findDetails(ErrorInfoSchema)[0]!.reason, reason);
    // Nothing lost: the stored certificate is the previous one.
    assert.equal(readFileSync(file, "utf8"), a.bundle);
  };
  await reject(a.key, "No certificate found", "NO_CERTIFICATE");
  await reject(a.cert, "No RSA key found", "NO_PRIVATE_KEY");
  await reject(b.key + a.cert, "Certificate and key do not match", "KEY_MISMATCH");
  await reject("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n" + a.key, "No certificate found", "NO_CERTIFICATE");

  // File names that try to leave the folder are refused at the edge (protovalidate) ...
  for (const filename of ["../escape.pem", "a/b.pem", "..pem", "x.txt"]) {
    const e = await rpcError(certs.putCertificate({ lbId, filename, pem: a.bundle }));
    assert.equal(e.code, Code.InvalidArgument, filename);
  }
  // ... and again by the store itself, whoever calls it.
  const store = new CertificateStore(agent.config.certDir);
  for (const filename of ["../escape.pem", "..", "/etc/passwd.pem", "a/../../b.pem"]) {
    await assert.rejects(store.put(lbId, filename, a.bundle), (e: unknown) => e instanceof DomainError && e.kind === "invalid");
  }
  await assert.rejects(store.put("../../etc", "x.pem", a.bundle), (e: unknown) => e instanceof DomainError && e.kind === "invalid");
  assert.equal(existsSync(join(agent.config.certDir, "escape.pem")), false);

  await certs.deleteCertificate({ lbId, filename: "listener-1.pem" });
  assert.equal(existsSync(file), false);
  assert.equal((await rpcError(certs.getCertificateMd5({ lbId, filename: "listener-1.pem" }))).code, Code.NotFound);
  assert.equal((await rpcError(certs.deleteCertificate({ lbId, filename: "listener-1.pem" }))).code, Code.NotFound);
});

test("TERMINATED_HTTPS listener serves TLS with the uploaded certificate; delete removes it", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "amt-tls-"));
  const agent = await startTestAgent();
  const backend = await startBackend("behind-tls");
  t.after(async () => {
    await killHaproxiesUnder(agent.stateDir);
    await agent.cleanup();
    await backend.close();
    rmSync(tmp, { recursive: true, force: true });
  });
  const lbId = randomUUID();
  const pem = await selfSignedPem(tmp, "www.example");
  const put = await agent.client(CertificateService).putCertificate({ lbId, filename: "tls-listener.pem", pem: pem.bundle });
  const port = await freePort();
  const crt = join(agent.config.certDir, lbId, "tls-listener.pem");
  const cfg = octaviaConfig({ lbId, runDir: tmp, listeners: [{ port, crt, members: [{ port: backend.port }] }] });
  const lb = agent.client(LoadBalancerService);
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  const listeners = (await lb.listListeners({})).listeners;
  assert.deepEqual(listeners.map((l) => l.type), ["TERMINATED_HTTPS"]);
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });

  const { peer, body } = await new Promise<{ peer: X509Certificate; body: string }>((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port, servername: "www.example", ca: pem.cert }, () => {
      const peer = s.getPeerX509Certificate()!;
      s.write("GET / HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n");
      let data = "";
      s.on("data", (c) => (data += c));
      s.on("end", () => resolve({ peer, body: data }));
    });
    s.on("error", reject);
  });
  assert.equal(peer.fingerprint256, new X509Certificate(pem.cert).fingerprint256);
  assert.match(body, /^HTTP\/1\.1 200/);
  assert.match(body, /\r\n\r\nbehind-tls$/);
  assert.ok(put.md5sum);
  assert.equal((await lb.listListeners({})).listeners[0]!.status, "ACTIVE");

  await lb.deleteLoadBalancer({ lbId });
  assert.equal(existsSync(crt), false, "delete removes the load balancer's certificates");
});
