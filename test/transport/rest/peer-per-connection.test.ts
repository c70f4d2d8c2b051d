// The client certificate's subject is read once per connection, not per
// request (getPeerCertificate builds the whole certificate, ~60 µs), over
// HTTP/1.1 keep-alive (REST) and HTTP/2 (Connect), and every call is still
// logged with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { TLSSocket } from "node:tls";
import { Writable } from "node:stream";
import { pino } from "pino";
import { SystemService } from "../../../src/gen/amphora/v1/system_pb.js";
import { startTestAgent } from "../../support/agent.js";

test("peer certificate: parsed once per connection, every call logged with its subject", async (t) => {
  const lines: { msg: string; peer?: string; protocol?: string }[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const agent = await startTestAgent({ logger: pino({ level: "info" }, sink) });
  t.after(() => agent.cleanup());
  let parsed = 0;
  const original = TLSSocket.prototype.getPeerCertificate;
  TLSSocket.prototype.getPeerCertificate = function (this: TLSSocket, ...a: [boolean?]) {
    if ((this as TLSSocket & { server?: unknown }).server) parsed++; // the agent's side of a connection
    return original.apply(this, a as never);
  } as typeof original;
  t.after(() => {
    TLSSocket.prototype.getPeerCertificate = original;
  });

  // REST: 10 requests on one keep-alive connection.
  const ka = new https.Agent({ keepAlive: true, maxSockets: 1, ca: agent.ca, cert: agent.cert, key: agent.key });
  t.after(() => ka.destroy());
  const { port } = new URL(agent.url);
  for (let i = 0; i < 10; i++) {
    const status = await new Promise<number>((resolve, reject) => {
      https.get({ host: "127.0.0.1", port, path: "/1.0/info", agent: ka, servername: "localhost" }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      }).on("error", reject);
    });
    assert.equal(status, 200);
  }
  assert.equal(parsed, 1, "one parse for ten REST requests on one connection");

  // Connect over one HTTP/2 session: 10 calls.
  const c = agent.client(SystemService);
  for (let i = 0; i < 10; i++) await c.getApiVersion({});
  assert.equal(parsed, 2, "one more parse for the HTTP/2 session's ten calls");

  const rpc = lines.filter((l) => l.msg === "rpc");
  assert.equal(rpc.length, 20);
  assert.ok(rpc.every((l) => /CN=/.test(l.peer ?? "")), "every call line names the peer");
  assert.equal(rpc.filter((l) => l.protocol === "rest").length, 10);
});
