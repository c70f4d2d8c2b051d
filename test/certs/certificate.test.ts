// CertificateService over mTLS, and a TERMINATED_HTTPS listener that really
// serves the uploaded certificate.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, statSync, readFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID, createHash, createPublicKey, X509Certificate } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { Code } from "@connectrpc/connect";
import { freePort, octaviaConfig, selfSignedPem, startBackend } from "../support/haproxy.js";
import { CertificateService } from "../../src/gen/amphora/v1/certificate_pb.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { CertificateStore } from "../../src/certs/store.js";
import { DomainError } from "../../src/errors.js";
import { agentWithRunDir, rpcError } from "../support/lb-test.js";
import { RestClient } from "../transport/rest/https-client.js";

test("certificate upload, md5, mode 0600, each rejection, delete", async (t) => {
  const { agent, runDir: tmp } = await agentWithRunDir(t);
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

/** An agent, a scratch folder and a backend, all ended after the test. */
async function tlsSetup(t: TestContext, backendName: string) {
  const { agent, runDir: tmp } = await agentWithRunDir(t);
  const backend = await startBackend(backendName);
  t.after(() => backend.close());
  return { agent, tmp, backend };
}

test("TERMINATED_HTTPS listener serves TLS with the uploaded certificate; delete removes it", async (t) => {
  const { agent, tmp, backend } = await tlsSetup(t, "behind-tls");
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

/** A CRL signed by `ca` (openssl ca -gencrl needs a small CA database). */
async function crlOf(dir: string, ca: { key: string; cert: string }): Promise<string> {
  const { runChecked } = await import("../../src/system/exec.js");
  const d = mkdtempSync(join(dir, "ca-"));
  writeFileSync(join(d, "ca.key"), ca.key);
  writeFileSync(join(d, "ca.crt"), ca.cert);
  writeFileSync(join(d, "index.txt"), "");
  writeFileSync(join(d, "crlnumber"), "01\n");
  writeFileSync(join(d, "ca.cnf"), `[ca]\ndefault_ca = c\n[c]\ndatabase = ${d}/index.txt\ncrlnumber = ${d}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 1\n`);
  await runChecked("openssl", ["ca", "-gencrl", "-batch", "-config", join(d, "ca.cnf"), "-keyfile", join(d, "ca.key"), "-cert", join(d, "ca.crt"), "-out", join(d, "crl.pem")]);
  return readFileSync(join(d, "crl.pem"), "utf8");
}

const sha1Name = (body: string) => createHash("sha1").update(body).digest("hex") + ".pem";

test("Octavia's other uploads: client CA and CRL secrets (named by their SHA-1), crt-lists of this load balancer's files", async (t) => {
  const { agent, runDir: tmp } = await agentWithRunDir(t);
  const certs = agent.client(CertificateService);
  const lbId = randomUUID();
  const lbDir = join(agent.config.certDir, lbId);
  const ca = await selfSignedPem(tmp, "client-ca.example");
  const crl = await crlOf(tmp, ca);
  assert.match(crl, /-----BEGIN X509 CRL-----/);

  // Secrets: what Octavia sends for a client CA and a CRL, no key by nature.
  for (const body of [ca.cert, crl, ca.cert + crl]) {
    const r = await certs.putCertificate({ lbId, filename: sha1Name(body), pem: body });
    assert.equal(r.md5sum, createHash("md5").update(body).digest("hex"));
    assert.equal(readFileSync(join(lbDir, sha1Name(body)), "utf8"), body);
  }
  // The same certificate under any other name is a bundle missing its key.
  let e = await rpcError(certs.putCertificate({ lbId, filename: "listener-1.pem", pem: ca.cert }));
  assert.equal(e.rawMessage, "No RSA key found");
  // A name that is the SHA-1 of other bytes does not make it a secret either.
  e = await rpcError(certs.putCertificate({ lbId, filename: sha1Name(ca.cert + "\n"), pem: ca.cert }));
  assert.equal(e.rawMessage, "No RSA key found");
  // A secret holding anything but certificates and CRLs is refused.
  const withPublicKey = ca.cert + createPublicKey(ca.key).export({ type: "spki", format: "pem" });
  e = await rpcError(certs.putCertificate({ lbId, filename: sha1Name(withPublicKey), pem: withPublicKey }));
  assert.equal(e.code, Code.InvalidArgument);
  assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /unexpected PUBLIC KEY block/);

  // crt-list: entries must be .pem files of this load balancer's folder.
  const list = `${lbDir}/a.pem\n${lbDir}/b.pem [alpn h2,http/1.1] b.example\n`;
  await certs.putCertificate({ lbId, filename: "listener-tls.pem", pem: list });
  assert.equal(readFileSync(join(lbDir, "listener-tls.pem"), "utf8"), list);
  const ok2 = `${lbDir}/a.pem [ca-file ${lbDir}/client-ca.pem verify required] a.example\n`;
  await certs.putCertificate({ lbId, filename: "listener-tls.pem", pem: ok2 });
  await certs.putCertificate({ lbId, filename: "listener-tls.pem", pem: list });
  for (const bad of [
    "/etc/ssl/private/x.pem\n", `${lbDir}/../other/x.pem\n`, `${join(agent.config.certDir, randomUUID())}/a.pem\n`, `${lbDir}/a.key\n`,
    // Files named by options are read by haproxy too.
    `${lbDir}/a.pem [ca-file /etc/shadow verify required]\n`, `${lbDir}/a.pem [crl-file ../../x.pem]\n`, `${lbDir}/a.pem [ca-verify-file client-ca.pem]\n`,
  ]) {
    e = await rpcError(certs.putCertificate({ lbId, filename: "listener-tls.pem", pem: bad }));
    assert.equal(e.code, Code.InvalidArgument, bad);
    assert.equal(e.rawMessage, "Invalid crt-list", bad);
    assert.equal(e.findDetails(ErrorInfoSchema)[0]!.reason, "BAD_CRT_LIST");
  }
  assert.equal(readFileSync(join(lbDir, "listener-tls.pem"), "utf8"), list, "a refused upload keeps the previous file");
  e = await rpcError(certs.putCertificate({ lbId, filename: "listener-tls.pem", pem: "just some text\n" }));
  assert.equal(e.rawMessage, "No certificate found");
});

test("a TERMINATED_HTTPS listener on an uploaded crt-list serves each SNI name its own certificate", async (t) => {
  const { agent, tmp, backend } = await tlsSetup(t, "behind-sni");
  const lbId = randomUUID();
  const lbDir = join(agent.config.certDir, lbId);
  const certs = agent.client(CertificateService);
  const a = await selfSignedPem(tmp, "a.example");
  const b = await selfSignedPem(tmp, "b.example");
  await certs.putCertificate({ lbId, filename: "cert-a.pem", pem: a.bundle });
  await certs.putCertificate({ lbId, filename: "cert-b.pem", pem: b.bundle });
  // As Octavia builds it: the default certificate first, then the SNI ones.
  await certs.putCertificate({ lbId, filename: "listener.pem", pem: `${lbDir}/cert-a.pem\n${lbDir}/cert-b.pem\n` });
  const port = await freePort();
  const cfg = octaviaConfig({ lbId, runDir: tmp, listeners: [{ port, crtList: join(lbDir, "listener.pem"), members: [{ port: backend.port }] }] });
  const lb = agent.client(LoadBalancerService);
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  assert.deepEqual((await lb.listListeners({})).listeners.map((l) => l.type), ["TERMINATED_HTTPS"]);
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });

  const served = (servername: string, ca: string) =>
    new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: "127.0.0.1", port, servername, ca }, () => {
        resolve(s.getPeerX509Certificate()!.fingerprint256);
        s.destroy();
      });
      s.on("error", reject);
    });
  assert.equal(await served("a.example", a.cert), new X509Certificate(a.cert).fingerprint256);
  assert.equal(await served("b.example", b.cert), new X509Certificate(b.cert).fingerprint256);
});

test("every certificate name the API accepts can be stored: 238-255 characters answer 200 over REST, 256 answers 400", async (t) => {
  const { agent, runDir: tmp } = await agentWithRunDir(t);
  const rest = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => rest.agent.destroy());
  const lbId = randomUUID();
  const a = await selfSignedPem(tmp, "long.example");
  const md5 = createHash("md5").update(a.bundle).digest("hex");
  const named = (len: number) => "n".repeat(len - ".pem".length) + ".pem";
  // The atomic write's temp name once added 18 characters: 238 and up failed with ENAMETOOLONG (500).
  for (const len of [237, 238, 250, 255]) {
    const r = await rest.request("PUT", `/1.0/loadbalancer/${lbId}/certificates/${named(len)}`, { body: a.bundle });
    assert.equal(r.status, 200, `${len}: ${r.text}`);
    assert.equal(readFileSync(join(agent.config.certDir, lbId, named(len)), "utf8"), a.bundle);
    assert.equal((await rest.request("GET", `/1.0/loadbalancer/${lbId}/certificates/${named(len)}`)).json<{ md5sum: string }>().md5sum, md5);
  }
  const tooLong = await rest.request("PUT", `/1.0/loadbalancer/${lbId}/certificates/${named(256)}`, { body: a.bundle });
  assert.equal(tooLong.status, 400, tooLong.text);
  assert.match(tooLong.text, /filename/);
  // No temp file left behind by any of them.
  assert.deepEqual(readdirSync(join(agent.config.certDir, lbId)).filter((n) => n.endsWith(".tmp")), []);
});
