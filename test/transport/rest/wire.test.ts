// The REST layer over the wire: HTTP/1.1 keep-alive with TLS 1.2 as the
// Octavia controller talks, HTTP/2, client certificates, the server
// certificate naming the amphora, body limits enforced while streaming,
// and one code path with Connect (same validation text, same log line).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import http2 from "node:http2";
import { Writable } from "node:stream";
import type { TLSSocket } from "node:tls";
import { pino } from "pino";
import { ConnectError } from "@connectrpc/connect";
import { startTestAgent, type TestAgent } from "../../support/agent.js";
import { RestClient } from "./https-client.js";
import { NetworkService } from "../../../src/gen/amphora/v1/network_pb.js";

let agent: TestAgent;
let client: RestClient;
const logLines: Record<string, unknown>[] = [];

before(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) logLines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  agent = await startTestAgent({ logger: pino({ level: "info" }, sink) });
  client = new RestClient(agent.url, agent, agent.config.amphoraId);
});
after(async () => {
  client?.close();
  await agent?.cleanup();
});

test("HTTP/1.1 keep-alive over TLS 1.2: many requests, errors included, on one connection", async () => {
  const paths = ["/", "/info", "/1.0/info", "/1.0/details", "/1.0/nope", "/1.0/listeners"];
  const seen: number[] = [];
  for (const p of paths) {
    const r = await client.request("GET", p);
    seen.push(r.connection);
    assert.equal(r.tlsVersion, "TLSv1.2");
    assert.match(r.contentType, /^application\/json/);
    JSON.parse(r.text);
  }
  // A 405 and a 400 keep the connection too.
  seen.push((await client.request("POST", "/1.0/info")).connection);
  seen.push((await client.request("GET", "/1.0/interface/not-an-ip")).connection);
  assert.deepEqual(new Set(seen), new Set([1]));
  assert.equal(client.connections, 1);
});

test("--dev: the server certificate names the amphora id in CN and SAN", async () => {
  const id = agent.config.amphoraId;
  const cert = await new Promise<ReturnType<TLSSocket["getPeerCertificate"]>>((resolve, reject) => {
    const req = https.request(
      { host: "127.0.0.1", port: agent.port, path: "/", ca: agent.ca, cert: agent.cert, key: agent.key, agent: false, maxVersion: "TLSv1.2", servername: id },
      (res) => {
        resolve((res.socket as TLSSocket).getPeerCertificate());
        res.resume();
      },
    );
    req.on("error", reject);
    req.end();
  });
  assert.equal(cert.subject.CN, id);
  assert.ok(cert.subjectaltname?.split(", ").includes(`DNS:${id}`), cert.subjectaltname);
  // A controller expecting another amphora id refuses the connection.
  const other = new RestClient(agent.url, agent, "00000000-0000-4000-8000-000000000000");
  await assert.rejects(other.request("GET", "/"), /altnames|does not match|Hostname/i);
  other.close();
});

test("a client without a certificate is refused at the TLS handshake", async () => {
  await assert.rejects(
    new Promise((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port: agent.port, path: "/info", ca: agent.ca, agent: false, maxVersion: "TLSv1.2" }, resolve);
      req.on("error", reject);
      req.end();
    }),
  );
});

test("HTTP/2: JSON, raw text bodies and errors", async (t) => {
  const session = http2.connect(agent.url, { ca: agent.ca, cert: agent.cert, key: agent.key, servername: agent.config.amphoraId });
  t.after(() => session.close());
  const call = (method: string, path: string, body?: string) =>
    new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      const s = session.request({ ":method": method, ":path": path });
      let status = 0;
      let type = "";
      const chunks: Buffer[] = [];
      s.on("response", (h) => {
        status = Number(h[":status"]);
        type = String(h["content-type"] ?? "");
      });
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("end", () => resolve({ status, type, text: Buffer.concat(chunks).toString("utf8") }));
      s.on("error", reject);
      s.end(body);
    });
  const info = await call("GET", "/info");
  assert.equal(info.status, 200);
  assert.equal(JSON.parse(info.text).api_version, "1.0");
  const bad = await call("PUT", "/1.0/vrrp/dance");
  assert.equal(bad.status, 400);
  assert.deepEqual(JSON.parse(bad.text), { message: "Invalid Request", details: "Unknown action: dance" });
  const missing = await call("GET", "/1.0/loadbalancer/6a1f4c8e-0d52-4d5e-9f0e-2b7c1a9d3e41/haproxy");
  assert.equal(missing.status, 404);
  assert.match(missing.type, /^application\/json/);
  assert.equal(JSON.parse(missing.text).message, "Loadbalancer Not Found");
});

/**
 * Streams up to `total` bytes (generated lazily, never held) and returns the
 * answer and how many bytes the client managed to write before it came.
 */
function upload(o: { path: string; total: number; declare: boolean }): Promise<{ status: number; body: string; written: number }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const req = https.request(
      {
        method: "PUT", host: "127.0.0.1", port: agent.port, path: o.path, agent: false,
        ca: agent.ca, cert: agent.cert, key: agent.key, maxVersion: "TLSv1.2",
        headers: o.declare ? { "content-length": String(o.total) } : { "transfer-encoding": "chunked" },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), written });
          req.destroy();
        });
      },
    );
    // Writing into a closed connection fails once the server hung up; the
    // answer (already received) is what counts.
    req.on("error", (e) => {
      if (!answered) reject(e);
    });
    const pump = () => {
      while (!answered && written < o.total && !req.destroyed) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      if (!answered && !req.destroyed) req.end();
    };
    pump();
  });
}

test("a 1 GB upload is refused with 413 early, declared or chunked, without buffering it", async () => {
  const GB = 1024 * 1024 * 1024;
  const rss0 = process.memoryUsage().rss;
  // Declared: refused from the header, before the body is read.
  const declared = await upload({ path: "/1.0/vrrp/upload", total: GB, declare: true });
  assert.equal(declared.status, 413);
  assert.deepEqual(JSON.parse(declared.body), {
    message: "Request Entity Too Large",
    details: `Content-Length ${GB} exceeds the limit of 1048576 bytes`,
  });
  assert.ok(declared.written < 64 * 1024 * 1024, `client wrote ${declared.written} bytes before the answer`);
  // Chunked: refused once the bytes read pass the limit (8 MiB for haproxy.cfg).
  const chunked = await upload({ path: `/1.0/loadbalancer/${agent.config.amphoraId}/6a1f4c8e-0d52-4d5e-9f0e-2b7c1a9d3e41/haproxy`, total: GB, declare: false });
  assert.equal(chunked.status, 413);
  assert.match(JSON.parse(chunked.body).details, /body exceeds the limit of 8388608 bytes/);
  assert.ok(chunked.written < 64 * 1024 * 1024, `client wrote ${chunked.written} bytes before the answer`);
  const grown = process.memoryUsage().rss - rss0;
  assert.ok(grown < 256 * 1024 * 1024, `agent process grew by ${grown} bytes`);
  // The agent still answers.
  assert.equal((await client.request("GET", "/info")).status, 200);
});

test("HTTP/2: an oversized upload gets 413 and only that stream ends; the session goes on", async (t) => {
  const session = http2.connect(agent.url, { ca: agent.ca, cert: agent.cert, key: agent.key });
  t.after(() => session.destroy());
  const r = await new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
    const s = session.request({ ":method": "PUT", ":path": "/1.0/certificate" });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    let status = 0;
    const body: Buffer[] = [];
    s.on("response", (h) => (status = Number(h[":status"])));
    s.on("data", (c: Buffer) => body.push(c));
    s.on("end", () => resolve({ status, body: Buffer.concat(body).toString("utf8"), sent }));
    s.on("error", (e) => (status ? resolve({ status, body: Buffer.concat(body).toString("utf8"), sent }) : reject(e)));
    const pump = () => {
      while (!status && !s.destroyed && sent < 1024 * 1024 * 1024) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
    };
    pump();
  });
  assert.equal(r.status, 413);
  assert.match(JSON.parse(r.body).details, /limit of 262144 bytes/);
  assert.ok(r.sent < 64 * 1024 * 1024, `sent ${r.sent}`);
  const again = await new Promise<number>((resolve, reject) => {
    const s = session.request({ ":path": "/info" });
    s.on("response", (h) => resolve(Number(h[":status"])));
    s.on("error", reject);
    s.resume();
    s.end();
  });
  assert.equal(again, 200);
});

test("one code path: REST and Connect give the same validation text and the same log line with protocol rest", async () => {
  const from = logLines.length;
  let connectErr: ConnectError | undefined;
  try {
    await agent.client(NetworkService, "connect-json").getInterface({ ip: "999.1.1.1" });
  } catch (e) {
    connectErr = ConnectError.from(e);
  }
  const r = await client.request("GET", "/1.0/interface/999.1.1.1");
  assert.equal(r.status, 400);
  assert.deepEqual(r.json(), { message: "Invalid IP address", details: connectErr?.rawMessage });
  const rpc = logLines.slice(from).filter((l) => l.msg === "rpc" && l.method === "amphora.v1.NetworkService/GetInterface");
  const protocols = rpc.map((l) => l.protocol).sort();
  assert.deepEqual(protocols, ["connect+json", "rest"]);
  const rest = rpc.find((l) => l.protocol === "rest")!;
  assert.equal(rest.outcome, "InvalidArgument");
  assert.match(String(rest.peer), /CN=amphora-dev-client/);
});

test("unknown routes and undecodable paths are 404 JSON; a query string is ignored; 405 names the allowed verbs", async () => {
  for (const p of ["/2.0/info", "/1.0/loadbalancer/%E0%A4%A/haproxy", "/1.0/listeners/a/b/c/d/e"]) {
    const r = await client.request("GET", p);
    assert.equal(r.status, 404, p);
    assert.match(r.contentType, /^application\/json/);
    assert.equal(typeof r.json<{ message: string }>().message, "string");
  }
  assert.equal((await client.request("GET", "/info?verbose=1")).status, 200);
  const r = await client.request("DELETE", "/1.0/config");
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, "PUT");
  assert.equal(r.json<{ message: string }>().message, "Method Not Allowed");
});

test("repeated slashes count as one: Octavia's version discovery asks GET // and must get API 1.0", async () => {
  // The controller joins its base URL ("https://ip:9443/") with the path "/".
  const r = await client.request("GET", "//");
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json<{ api_version: string }>().api_version, "1.0");
  const info = await client.request("GET", "//1.0//info");
  assert.equal(info.status, 200, info.text);
  assert.equal(info.json<{ api_version: string }>().api_version, "1.0");
  // Still a JSON 404 for what is no route, however many slashes.
  const none = await client.request("GET", "//2.0//info");
  assert.equal(none.status, 404);
  assert.match(none.contentType, /^application\/json/);
});
