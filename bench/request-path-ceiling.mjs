// The ceilings of bench/request-path.ts, run with plain node on the compiled
// code (like the agent under test; no TypeScript loader, whose source-map
// support makes every Error dearer): a bare node:https server with the
// agent's TLS options answering a fixed body (REST), and the project's
// generated services with empty implementations on a connectNodeAdapter
// handler with the agent's HTTP/2 server options (RPC).
// argv[2]: {"ca": file, "bundle": file}. Tells the parent its ports over IPC;
// the parent sets the REST body of a path with {path, body}.
import https from "node:https";
import http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { serverTlsOptions, loadTlsMaterial } from "../dist/transport/tls.js";
import { MAX_RPC_REQUEST_BYTES } from "../dist/transport/server.js";
import { serverLimitOptions } from "../dist/transport/connection-limits.js";
import { DEFAULT_LIMITS } from "../dist/config/transport-options.js";
import { AMPHORA_SERVICES } from "../dist/agent/routes.js";

const o = JSON.parse(process.argv[2]);
const tls = serverTlsOptions(await loadTlsMaterial(o.ca, o.bundle));
const bodies = new Map();
const rest = https.createServer(tls, (req, res) => {
  const body = bodies.get(req.url ?? "") ?? "{}";
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
// Every unary method of the contract answers an empty message.
const routes = (router) => {
  for (const s of AMPHORA_SERVICES) {
    const impl = {};
    for (const m of s.methods) if (m.methodKind === "unary") impl[m.localName] = () => ({});
    router.service(s, impl);
  }
};
const rpc = http2.createSecureServer(
  { ...tls, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"], ...serverLimitOptions(DEFAULT_LIMITS) },
  connectNodeAdapter({ routes, readMaxBytes: MAX_RPC_REQUEST_BYTES }),
);
const listen = (s) => new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)));
const restPort = await listen(rest);
const rpcPort = await listen(rpc);
process.on("message", (m) => {
  bodies.set(m.path, m.body);
  process.send({ set: m.path });
});
process.send({ restPort, rpcPort });
// A clean exit on the parent's SIGTERM, so that --cpu-prof writes its profile.
process.once("SIGTERM", () => process.exit(0));
