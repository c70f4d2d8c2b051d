// The agent's spine over every protocol, with real mutual TLS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import http2 from "node:http2";
import tls from "node:tls";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { CertificateService } from "../../src/gen/amphora/v1/certificate_pb.js";
import { createCa, issueCertificate, pkiPaths } from "../../src/agent/dev-pki.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";

let agent: TestAgent;
let otherCaDir: string;

before(async () => {
  agent = await startTestAgent();
  // A client certificate from a CA the agent does not trust.
  otherCaDir = mkdtempSync(join(tmpdir(), "amphora-otherca-"));
  const p = await createCa(otherCaDir, "stranger CA");
  const { runChecked } = await import("../../src/system/exec.js");
  await runChecked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p.clientKey]);
  await issueCertificate(pkiPaths(otherCaDir), { keyPath: p.clientKey, certPath: p.clientCert, cn: "stranger", client: true });
});

after(async () => {
  await agent?.cleanup();
  if (otherCaDir) rmSync(otherCaDir, { recursive: true, force: true });
});

/** One HTTP/1.1 request over TLS 1.2 with the given client identity. */
function h1(path: string, opts: { method?: string; body?: string; headers?: Record<string, string>; cert?: string; key?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string; alpn: string | false; tls: string | null }>((resolve, reject) => {
    const u = new URL(path, agent.url);
    const req = https.request(
      {
        host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? "GET",
        ca: agent.ca, cert: opts.cert ?? agent.cert, key: opts.key ?? agent.key,
        maxVersion: "TLSv1.2", headers: opts.headers, agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          const s = res.socket as tls.TLSSocket;
          resolve({ status: res.statusCode!, headers: res.headers, body, alpn: s.alpnProtocol ?? false, tls: s.getProtocol?.() ?? null });
        });
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

test("Connect JSON over HTTP/1.1 with TLS 1.2 answers GetInfo with real versions", async () => {
  const r = await h1("/amphora.v1.SystemService/GetInfo", {
    method: "POST", body: "{}", headers: { "content-type": "application/json" },
  });
  assert.equal(r.status, 200);
  assert.equal(r.tls, "TLSv1.2");
  const info = JSON.parse(r.body);
  assert.equal(info.apiVersion, "1.0");
  assert.equal(info.amphoraId, agent.config.amphoraId);
  assert.match(info.haproxyVersion, /^\d+\.\d+/);
});

test("Connect GET works for side-effect-free methods", async () => {
  const r = await h1("/amphora.v1.SystemService/GetApiVersion?encoding=json&message=%7B%7D");
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { apiVersion: "1.0" });
});

for (const kind of ["connect", "connect-json", "grpc", "grpc-web"] as const) {
  test(`generated client over HTTP/2 (${kind}) gets details read from the system`, async () => {
    const d = await agent.client(SystemService, kind).getDetails({});
    assert.equal(d.apiVersion, "1.0");
    assert.ok(d.cpuCount >= 1);
    assert.ok(d.memory!.total > 0n, "MemTotal from /proc/meminfo");
    assert.ok(d.disk!.available > 0n, "statfs of /");
    assert.ok(d.cpu!.total > 0n, "/proc/stat");
    assert.equal(d.load.length, 3);
    assert.equal(d.topology, "SINGLE");
  });
}

test("interface lookup by IP finds lo for 127.0.0.1 and not_found for an unassigned address", async () => {
  const net = agent.client(NetworkService, "grpc");
  assert.deepEqual((await net.getInterface({ ip: "127.0.0.1" })).interface, "lo");
  await assert.rejects(net.getInterface({ ip: "203.0.113.77" }), (e: ConnectError) => e.code === Code.NotFound);
});

test("a connection without a client certificate is refused", async () => {
  await assert.rejects(
    new Promise((resolve, reject) => {
      const u = new URL(agent.url);
      const s = tls.connect({ host: u.hostname, port: Number(u.port), ca: agent.ca, ALPNProtocols: ["h2"] }, () => {
        // TLS 1.3: the server's refusal arrives after the client's handshake completes.
        s.write("x");
      });
      s.on("data", resolve);
      s.on("error", reject);
      s.on("close", () => reject(new Error("closed by server")));
    }),
  );
});

test("a client certificate from another CA is refused", async () => {
  const p = pkiPaths(otherCaDir);
  await assert.rejects(
    h1("/amphora.v1.SystemService/GetInfo", {
      method: "POST", body: "{}", headers: { "content-type": "application/json" },
      cert: readFileSync(p.clientCert, "utf8"), key: readFileSync(p.clientKey, "utf8"),
    }),
  );
  const t = createConnectTransport({
    baseUrl: agent.url, httpVersion: "2",
    nodeOptions: { ca: agent.ca, cert: readFileSync(p.clientCert, "utf8"), key: readFileSync(p.clientKey, "utf8") },
  });
  // The handshake fails on the server side; which code the client sees
  // depends on when the TLS alert arrives (unavailable or canceled).
  await assert.rejects(createClient(SystemService, t).getInfo({}), (e: ConnectError) => e instanceof ConnectError);
});

test("a malformed request body gets invalid_argument", async () => {
  const r = await h1("/amphora.v1.SystemService/GetInfo", {
    method: "POST", body: "{not json", headers: { "content-type": "application/json" },
  });
  assert.equal(r.status, 400);
  const e = JSON.parse(r.body) as { code: string; message: string };
  assert.equal(e.code, "invalid_argument");
  assert.match(e.message, /cannot decode message amphora\.v1\.GetInfoRequest from JSON/, "the message says what could not be read");
});

test("a request breaking a protovalidate rule gets invalid_argument naming the field, on every protocol", async () => {
  for (const kind of ["connect", "grpc", "grpc-web"] as const) {
    const certs = agent.client(CertificateService, kind);
    await assert.rejects(
      certs.getCertificateMd5({ lbId: "not-a-uuid", filename: "a.pem" }),
      (e: ConnectError) => e.code === Code.InvalidArgument && /lb_id/.test(e.rawMessage),
    );
    await assert.rejects(
      certs.getCertificateMd5({ lbId: "11111111-2222-4333-8444-555555555555", filename: "../../etc/passwd.pem" }),
      (e: ConnectError) => e.code === Code.InvalidArgument && /filename/.test(e.rawMessage),
    );
  }
});

test("HTTP/2 is negotiated with ALPN", async () => {
  const session = http2.connect(agent.url, { ca: agent.ca, cert: agent.cert, key: agent.key });
  try {
    const alpn = await new Promise<string | false>((resolve, reject) => {
      session.on("connect", () => resolve((session.socket as tls.TLSSocket).alpnProtocol ?? false));
      session.on("error", reject);
    });
    assert.equal(alpn, "h2");
  } finally {
    session.close();
  }
});

test("an RPC request larger than any the contract allows is refused before it is decoded", async () => {
  const { LoadBalancerService } = await import("../../src/gen/amphora/v1/load_balancer_pb.js");
  const lbs = agent.client(LoadBalancerService, "connect");
  const huge = "#".repeat(9 * 1024 * 1024);
  // Without the server's read limit this reaches protovalidate, which
  // answers invalid_argument ("must be at most 8388608 bytes").
  await assert.rejects(
    lbs.putConfig({ amphoraId: agent.config.amphoraId, lbId: "11111111-2222-4333-8444-555555555555", config: huge }),
    (e: ConnectError) => e.code === Code.ResourceExhausted,
  );
});
