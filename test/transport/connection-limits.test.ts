// Connections are bounded in time and number before they do any work:
// silent TCP connections and a ClientHello stalled half-way are closed
// after the TLS handshake timeout, a connection that sends no request after
// its handshake after the first-request timeout, a trickled request body
// after the body timeout; the connections still in their handshake are
// capped (oldest dropped), HTTP/2 sessions advertise and enforce a stream
// limit, and requests in flight are capped. A real mutual-TLS client keeps
// being served throughout. Real sockets, real agent.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import http2 from "node:http2";
import https from "node:https";
import { readdirSync } from "node:fs";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { connectH2 } from "../support/raw-rpc.js";
import { DEFAULT_LIMITS } from "../../src/config/transport-options.js";

let agent: TestAgent;
const limits = {
  ...DEFAULT_LIMITS,
  handshakeTimeoutMs: 1500,
  firstRequestTimeoutMs: 1500,
  bodyTimeoutMs: 2000,
  maxPendingHandshakes: 100,
  maxStreamsPerSession: 20,
  maxRequests: 30,
};

before(async () => {
  agent = await startTestAgent({ overrides: { limits } });
});
after(async () => {
  await agent?.cleanup();
});

const openFds = () => readdirSync("/proc/self/fd").length;

/** Resolves with the ms until the socket closed, or rejects after `maxMs`. */
function closedWithin(sock: net.Socket, maxMs: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    if (sock.destroyed) return resolve(0);
    const t = setTimeout(() => reject(new Error(`still open after ${maxMs} ms`)), maxMs);
    sock.once("close", () => {
      clearTimeout(t);
      resolve(Date.now() - t0);
    });
    sock.on("error", () => {});
  });
}

function tcp(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(agent.port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

/** A real mutual-TLS HTTP/1.1 request on a new connection: the status. */
function legit(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(agent.url + "/1.0/info", { ca: agent.ca, cert: agent.cert, key: agent.key, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The first bytes a real TLS client sends (its ClientHello). */
async function clientHello(): Promise<Buffer> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => srv.once("connection", (s) => s.once("data", (d: Buffer) => { resolve(d); s.destroy(); })));
  const c = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false });
  c.on("error", () => {});
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

test("TCP connections that never send a ClientHello are closed after the handshake timeout", async () => {
  const socks = await Promise.all(Array.from({ length: 20 }, tcp));
  // Bound generous for a loaded machine; node's own default is 120 s.
  const times = await Promise.all(socks.map((s) => closedWithin(s, limits.handshakeTimeoutMs + 8000)));
  assert.ok(Math.max(...times) >= limits.handshakeTimeoutMs - 200, `closed too early: ${times}`);
});

test("a ClientHello stalled half-way is closed after the handshake timeout", async () => {
  const hello = await clientHello();
  const s = await tcp();
  s.write(hello.subarray(0, Math.floor(hello.length / 2)));
  await closedWithin(s, limits.handshakeTimeoutMs + 8000);
});

test("a connection that sends no request after its handshake is closed (HTTP/2 and HTTP/1.1)", async () => {
  const h2 = await connectH2(agent.url, agent);
  const h2closed = new Promise<void>((resolve) => h2.once("close", () => resolve()));
  h2.on("error", () => {});
  const h1 = tls.connect({ port: agent.port, host: "127.0.0.1", ca: agent.ca, cert: agent.cert, key: agent.key, ALPNProtocols: ["http/1.1"], servername: "localhost" });
  await new Promise<void>((r, j) => { h1.once("secureConnect", () => r()); h1.once("error", j); });
  const bound = limits.firstRequestTimeoutMs + 8000;
  await Promise.all([
    closedWithin(h1, bound),
    Promise.race([h2closed, new Promise((_, j) => setTimeout(() => j(new Error("HTTP/2 session still open")), bound))]),
  ]);
});

test("a request body trickled in is cut after the body timeout (HTTP/2 stream reset, HTTP/1.1 connection closed)", async () => {
  const s = await connectH2(agent.url, agent);
  try {
    const req = s.request({ ":method": "PUT", ":path": "/1.0/config", "content-type": "text/plain" });
    req.on("error", () => {});
    const timer = setInterval(() => { if (!req.destroyed) req.write("#"); }, 300);
    const t0 = Date.now();
    const code = await new Promise<number>((resolve, reject) => {
      req.once("close", () => resolve(req.rstCode));
      setTimeout(() => reject(new Error("a trickled HTTP/2 body was not cut")), limits.bodyTimeoutMs + 8000);
    }).finally(() => clearInterval(timer));
    assert.equal(code, http2.constants.NGHTTP2_CANCEL);
    assert.ok(Date.now() - t0 >= limits.bodyTimeoutMs - 200);
  } finally {
    s.close();
  }
  // HTTP/1.1, chunked and one byte at a time.
  const h1 = tls.connect({ port: agent.port, host: "127.0.0.1", ca: agent.ca, cert: agent.cert, key: agent.key, ALPNProtocols: ["http/1.1"], servername: "localhost" });
  await new Promise<void>((r, j) => { h1.once("secureConnect", () => r()); h1.once("error", j); });
  h1.write("PUT /1.0/config HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
  const timer = setInterval(() => { if (!h1.destroyed) h1.write("1\r\n#\r\n"); }, 300);
  try {
    await closedWithin(h1, limits.bodyTimeoutMs + 8000);
  } finally {
    clearInterval(timer);
  }
  // The connection bound is per request: a normal upload is not affected.
  assert.equal(await legit(), 200);
});

test("2,000 silent TCP connections: at most max_pending_handshakes stay open, a real mTLS client keeps being served, and fds come back", async () => {
  const fds0 = openFds();
  const socks: net.Socket[] = [];
  const served: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const s = net.connect(agent.port, "127.0.0.1");
    s.on("error", () => {});
    socks.push(s);
    if (i % 400 === 399) served.push(await legit());
  }
  await Promise.all(socks.map((s) => new Promise((r) => (s.connecting ? s.once("connect", r).once("close", r) : r(null)))));
  await new Promise((r) => setTimeout(r, 300));
  const pending = agent.server.guard.stats().pendingHandshakes;
  assert.ok(pending <= limits.maxPendingHandshakes, `${pending} connections in their handshake`);
  assert.ok(socks.filter((s) => s.destroyed || s.readyState === "closed").length >= 2000 - limits.maxPendingHandshakes - 50, "the oldest were closed");
  for (let i = 0; i < 5; i++) served.push(await legit());
  assert.deepEqual(served, served.map(() => 200), "the real client was served throughout");
  // The rest go with the handshake timeout.
  await Promise.all(socks.map((s) => closedWithin(s, limits.handshakeTimeoutMs + 10000)));
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(openFds() <= fds0 + 10, `fds ${fds0} -> ${openFds()}`);
});

test("an HTTP/2 session advertises max_concurrent_streams and the server caps requests in flight", async () => {
  const s = http2.connect(agent.url, { ca: agent.ca, cert: agent.cert, key: agent.key });
  try {
    const settings = await new Promise<http2.Settings>((r) => s.once("remoteSettings", r));
    assert.equal(settings.maxConcurrentStreams, limits.maxStreamsPerSession);
  } finally {
    s.close();
  }
  // 3 sessions x 15 WatchStats streams = 45 > max_requests (30).
  const sessions = await Promise.all([0, 1, 2].map(() => connectH2(agent.url, agent)));
  const outcomes: Promise<string>[] = [];
  const streams: http2.ClientHttp2Stream[] = [];
  const body = Buffer.from([0, 0, 0, 0, 3, 0x10, 0xe8, 0x07]); // WatchStats { interval_ms: 1000 } (field 2)
  for (const ses of sessions) {
    for (let i = 0; i < 15; i++) {
      const st = ses.request({ ":method": "POST", ":path": "/amphora.v1.StatsService/WatchStats", "content-type": "application/grpc", te: "trailers" });
      st.on("error", () => {});
      streams.push(st);
      outcomes.push(new Promise((resolve) => {
        st.once("response", () => resolve("served"));
        st.once("close", () => resolve(st.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? "refused" : `closed ${st.rstCode}`));
      }));
      st.end(body);
    }
  }
  const got = await Promise.all(outcomes);
  assert.equal(got.filter((x) => x === "served").length, limits.maxRequests, got.join(","));
  assert.equal(got.filter((x) => x === "refused").length, 45 - limits.maxRequests, got.join(","));
  for (const st of streams) st.close(http2.constants.NGHTTP2_CANCEL);
  for (const ses of sessions) ses.close();
  // Once they are gone, requests are served again.
  for (let i = 0; i < 50 && agent.server.guard.stats().requests > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(agent.server.guard.stats().requests, 0);
  assert.equal(await legit(), 200);
});
