// Which verified client certificates may call the agent: never the agent's
// own server certificate (Octavia gives amphora certificates clientAuth too,
// so any amphora's key pair would drive every other agent), never another
// certificate with its public key, and only the listed controller
// certificates when the agent config lists some. Refusals are logged with
// the peer address and the reason.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCertificate, pkiPaths } from "../../src/agent/dev-pki.js";
import { runChecked } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { capturingLogger } from "../support/log-sink.js";

let agent: TestAgent;
let log: ReturnType<typeof capturingLogger>;
let dir: string;
let serverBundle: string;
let sameKeyCert: string;
let serverKey: string;
let otherClient: { cert: string; key: string };

before(async () => {
  log = capturingLogger();
  agent = await startTestAgent({ logger: log.logger });
  dir = mkdtempSync(join(tmpdir(), "amphora-tr-ident-"));
  const pki = pkiPaths(join(agent.stateDir, "pki"));
  serverBundle = readFileSync(agent.pki!.serverBundle, "utf8");
  serverKey = readFileSync(pki.serverKey, "utf8");
  // A client-only certificate the CA issued for the agent's own key.
  await issueCertificate(pki, { keyPath: pki.serverKey, certPath: join(dir, "same-key.pem"), cn: "looks-like-a-controller", client: true });
  sameKeyCert = readFileSync(join(dir, "same-key.pem"), "utf8");
  // Another client the CA signed (another controller, or a stolen certificate).
  await runChecked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", join(dir, "other-key.pem")]);
  await issueCertificate(pki, { keyPath: join(dir, "other-key.pem"), certPath: join(dir, "other.pem"), cn: "other-controller", client: true });
  otherClient = { cert: readFileSync(join(dir, "other.pem"), "utf8"), key: readFileSync(join(dir, "other-key.pem"), "utf8") };
});
after(async () => {
  await agent?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** GET /1.0/info with a client identity over TLS 1.3 (or 1.2): the status, or the error when no answer came. */
function info(url: string, ca: string, cert: string, key: string, maxVersion: "TLSv1.2" | "TLSv1.3" = "TLSv1.3") {
  return new Promise<{ status?: number; error?: string; localPort?: number }>((resolve) => {
    const req = https.request(url + "/1.0/info", { ca, cert, key, maxVersion, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode }));
    });
    let localPort: number | undefined;
    req.on("socket", (s) => s.on("connect", () => (localPort = s.localPort)));
    req.on("error", (e) => resolve({ error: e.message, localPort }));
    req.setTimeout(10_000, () => req.destroy(new Error("no answer in 10 s")));
    req.end();
  });
}

test("the agent's own server certificate is refused as a client, on TLS 1.2 and 1.3, and the refusal is logged with the peer address", async () => {
  for (const v of ["TLSv1.2", "TLSv1.3"] as const) {
    const r = await info(agent.url, agent.ca, serverBundle, serverBundle, v);
    assert.equal(r.status, undefined, `${v}: the agent's own certificate got an answer`);
    assert.ok(r.error, v);
  }
  const refused = log.lines.filter((l) => l.msg === "client certificate refused");
  assert.ok(refused.length >= 2, JSON.stringify(log.lines.slice(-5)));
  assert.match(String(refused[0]!.peer), /^127\.0\.0\.1:\d+$/);
  assert.match(String(refused[0]!.reason), /agent's own server certificate/);
  // The controller's certificate still works.
  assert.equal((await info(agent.url, agent.ca, agent.cert, agent.key)).status, 200);
});

test("a certificate the CA issued for the agent's own key is refused too", async () => {
  const r = await info(agent.url, agent.ca, sameKeyCert, serverKey);
  assert.equal(r.status, undefined, "a certificate with the agent's public key got an answer");
  assert.ok(log.lines.some((l) => l.msg === "client certificate refused" && /own public key/.test(String(l.reason))));
});

test("without an allow-list any other client the CA signed is served", async () => {
  assert.equal((await info(agent.url, agent.ca, otherClient.cert, otherClient.key)).status, 200);
});

test("a handshake without a client certificate is logged with the peer address and a reason in words", async () => {
  const r = await info(agent.url, agent.ca, undefined as unknown as string, undefined as unknown as string);
  assert.equal(r.status, undefined);
  await new Promise((res) => setTimeout(res, 200));
  const l = log.lines.filter((x) => x.msg === "TLS handshake refused").at(-1);
  assert.ok(l, "the refused handshake was logged");
  assert.match(String(l.peer), /^127\.0\.0\.1:\d+$/, "with the peer address");
  assert.match(String(l.reason), /no certificate|not accepted|closed the connection/);
});

/**
 * A state dir of its own holding the first agent's PKI and id: a second agent
 * may not share a live agent's state dir (its state-directory lock).
 */
function pkiCopy(): string {
  const d = mkdtempSync(join(dir, "state-"));
  cpSync(join(agent.stateDir, "pki"), join(d, "pki"), { recursive: true });
  if (existsSync(join(agent.stateDir, "amphora-id"))) cpSync(join(agent.stateDir, "amphora-id"), join(d, "amphora-id"));
  return d;
}

test("with an allow-list only the listed controller certificates are served (by subject or SHA-256 fingerprint)", async () => {
  const fp = new X509Certificate(otherClient.cert).fingerprint256;
  const listed = await startTestAgent({
    stateDir: pkiCopy(),
    overrides: { clientCerts: { subjects: ["CN=amphora-dev-client"], sha256: [] } },
    logger: log.logger,
  });
  try {
    assert.equal((await info(listed.url, agent.ca, agent.cert, agent.key)).status, 200, "listed by subject");
    assert.equal((await info(listed.url, agent.ca, otherClient.cert, otherClient.key)).status, undefined, "not listed");
    assert.ok(log.lines.some((l) => l.msg === "client certificate refused" && /other-controller.*not one of the allowed/.test(String(l.reason))));
  } finally {
    await listed.cleanup();
  }
  const byFp = await startTestAgent({
    stateDir: pkiCopy(),
    overrides: { clientCerts: { subjects: [], sha256: [fp.toLowerCase()] } },
    logger: log.logger,
  });
  try {
    assert.equal((await info(byFp.url, agent.ca, otherClient.cert, otherClient.key)).status, 200, "listed by fingerprint");
    assert.equal((await info(byFp.url, agent.ca, agent.cert, agent.key)).status, undefined, "not listed");
  } finally {
    await byFp.cleanup();
  }
});

test("the allow-list and the bounds are agent-config options of [amphora_agent], kept by a controller's config update", async () => {
  const { applyIni, defaultConfig, LOCAL_OPTIONS } = await import("../../src/config/config.js");
  const c = applyIni(defaultConfig("/tmp/x"), [
    "[amphora_agent]",
    "controller_cert_subjects = CN=octavia-controller,O=example; CN=ops",
    "controller_cert_sha256 = AB:" + "CD:".repeat(30) + "EF",
    "tls_handshake_timeout = 3",
    "max_concurrent_streams = 50",
  ].join("\n"), "t.conf").config;
  assert.deepEqual(c.clientCerts.subjects, ["CN=octavia-controller,O=example", "CN=ops"]);
  assert.equal(c.clientCerts.sha256.length, 1);
  assert.equal(c.limits.handshakeTimeoutMs, 3000);
  assert.equal(c.limits.maxStreamsPerSession, 50);
  assert.throws(() => applyIni(defaultConfig("/tmp/x"), "[amphora_agent]\ncontroller_cert_sha256 = nope", "t.conf"), /t\.conf:2: option \[amphora_agent\] controller_cert_sha256: expected SHA-256/);
  assert.ok(LOCAL_OPTIONS.some(([s, k]) => s === "amphora_agent" && k === "controller_cert_subjects"));
});
