// One TLS port for everything: Connect (JSON and binary), gRPC and gRPC-Web
// via Connect's router (rpc-adapter.ts), and whatever the fallback serves (REST /1.0, /metrics).
// HTTP/2 with ALPN, HTTP/1.1 allowed; a verified client certificate is
// required on every connection.
import http2 from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { ServerResponse } from "node:http";
import { Code, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { rpcAdapter } from "./rpc-adapter.js";
import type { Logger } from "../log.js";
import { peerSubjectKey } from "./interceptors.js";
import type { SecureContextOptions } from "node:tls";
import { mapDecodeErrors } from "./decode-errors.js";
import { guardConnections, peerAddress, rateLimitedWarn, serverLimitOptions, type ConnectionGuard } from "./connection-limits.js";
import { DEFAULT_LIMITS, type ConnectionLimits } from "../config/transport-options.js";
import { createClientIdentity } from "./client-identity.js";
import { type ClientCertRules } from "../config/transport-options.js";
import { cachedPeerSubject } from "./peer-cache.js";
import { lazyValidateInterceptor } from "./lazy-validate.js";
import { serverTlsOptions } from "./tls.js";
import { type TlsMaterial } from "../config/transport-options.js";
import { peerSubject } from "./node-http.js";
import { nodeResponseKey, RESPONSE_COMPRESSIONS } from "./direct-stream.js";
import type { NodeRequest, NodeResponse, FallbackHandler } from "./node-http.js";

export interface AgentServerOptions {
  tls: TlsMaterial;
  logger: Logger;
  routes: (router: ConnectRouter) => void;
  /** Run before validation (logging, error mapping). */
  interceptors: Interceptor[];
  fallbacks?: FallbackHandler[];
  requestTimeoutMs?: number;
  /** Largest RPC request message accepted (default MAX_RPC_REQUEST_BYTES). */
  readMaxBytes?: number;
  /** Time and count bounds on connections and requests (default DEFAULT_LIMITS). */
  limits?: ConnectionLimits;
  /** Controller certificates allowed beyond the CA check (default: any but the agent's own). */
  clientCerts?: ClientCertRules;
}

/**
 * The largest request the contract allows is an 8 MiB haproxy config
 * (PutConfig's max_bytes rule); a little more for the rest of the message.
 * Without a limit connect-node reads up to 4 GiB before validation runs.
 */
export const MAX_RPC_REQUEST_BYTES = 8 * 1024 * 1024 + 64 * 1024;

export interface AgentServer {
  server: http2.Http2SecureServer;
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight calls finish, then closes sessions. */
  close(graceMs?: number): Promise<void>;
  /** Installs a new server certificate (rotation); it is never accepted as a client either. */
  setSecureContext(opts: SecureContextOptions): void;
  guard: ConnectionGuard;
}

function notFoundJson(res: NodeResponse): void {
  const body = JSON.stringify({ message: "Not Found", details: "no such route" });
  (res as ServerResponse).writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** What a failed handshake means, in words (node's own message may be "socket hang up"). */
function handshakeReason(err: Error & { code?: string }): string {
  switch (err.code) {
    case "ECONNRESET":
      return "the client closed the connection before the TLS handshake completed";
    case "ERR_TLS_HANDSHAKE_TIMEOUT":
      return "the TLS handshake did not complete in time";
    case "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE":
      return "the client sent no certificate";
    default:
      return /certificate|unknown ca|verify/i.test(err.message) ? `the client certificate was not accepted (${err.code ?? "TLS error"})` : (err.code ?? "TLS error");
  }
}

export function createAgentServer(o: AgentServerOptions): AgentServer {
  const fallbacks = o.fallbacks ?? [];
  // The response of each server-streaming call, for handlers that write
  // their messages themselves (see direct-stream.ts); nothing is kept for
  // other calls (a unary call pays one Set lookup).
  const responses = new WeakMap<NodeRequest, NodeResponse>();
  const streamingPaths = new Set<string>();
  const limits = o.limits ?? DEFAULT_LIMITS;
  const handler = rpcAdapter({
    routes: (router) => {
      o.routes(router);
      for (const h of router.handlers) if (h.method.methodKind === "server_streaming") streamingPaths.add(h.requestPath);
      mapDecodeErrors(router, (method, err, req) =>
        o.logger.warn({ method, peer: req.contextValues?.get(peerSubjectKey), outcome: "InvalidArgument", err: err.rawMessage }, "rpc request not decodable"));
    },
    interceptors: [...o.interceptors, lazyValidateInterceptor()],
    // Named here because handlers that write stream messages themselves
    // (direct-stream.ts) must compress with what connect negotiated.
    acceptCompression: RESPONSE_COMPRESSIONS,
    readMaxBytes: o.readMaxBytes ?? MAX_RPC_REQUEST_BYTES,
    contextValues: (req) => {
      const v = createContextValues().set(peerSubjectKey, cachedPeerSubject(req, peerSubject));
      const res = responses.get(req);
      return res ? v.set(nodeResponseKey, res) : v;
    },
    fallback: (req, res) => {
      void (async () => {
        for (const f of fallbacks) if (await f(req, res)) return;
        notFoundJson(res);
      })().catch((e) => {
        o.logger.error({ err: (e as Error).message, path: req.url }, "fallback handler failed");
        if (!res.headersSent) (res as ServerResponse).writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ message: "Internal Server Error" }));
      });
    },
    onFailure: (method, err) => o.logger.warn({ method, outcome: Code[err.code], err: err.rawMessage }, "rpc response not written"),
  });
  // In-flight requests per HTTP/1.1 socket, so shutdown can end idle
  // keep-alive sockets at once and busy ones when their response is done.
  const busy = new Map<Socket, number>();
  let closing = false;
  const tracked = (req: NodeRequest, res: NodeResponse) => {
    if (!guard.admit(req, res)) return;
    if (req.httpVersionMajor === 1) {
      const sock = req.socket as Socket;
      busy.set(sock, (busy.get(sock) ?? 0) + 1);
      res.once("close", () => {
        const n = (busy.get(sock) ?? 1) - 1;
        if (n > 0) busy.set(sock, n);
        else busy.delete(sock); // no entry per idle keep-alive socket
        if (closing && n === 0) sock.end();
      });
      if (closing) (res as ServerResponse).setHeader("connection", "close");
    }
    if (streamingPaths.has(req.url ?? "")) responses.set(req, res);
    handler(req, res);
  };
  const server = http2.createSecureServer(
    {
      ...serverTlsOptions(o.tls),
      allowHTTP1: true,
      ALPNProtocols: ["h2", "http/1.1"],
      ...serverLimitOptions(limits),
    },
    tracked,
  );
  const guard = guardConnections(server, limits, o.logger);
  const identity = createClientIdentity(o.tls.cert, o.clientCerts ?? { subjects: [], sha256: [] });
  const warn = rateLimitedWarn(o.logger);
  // Before node's own listener hands the socket to HTTP/2 or HTTP/1.1.
  server.prependListener("secureConnection", (sock: TLSSocket) => {
    const why = identity.refusal(sock);
    if (!why) return;
    warn("client-refused", { peer: peerAddress(sock), subject: peerSubject(sock), reason: why }, "client certificate refused");
    sock.destroy();
  });
  // Track everything open so shutdown can close it: http2.Server.close()
  // otherwise waits for idle client sessions forever.
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<import("node:tls").TLSSocket>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("secureConnection", (sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  server.on("tlsClientError", (err, sock) => {
    warn("handshake", { peer: peerAddress(sock), reason: handshakeReason(err), err: err.message }, "TLS handshake refused");
  });
  if (o.requestTimeoutMs) server.setTimeout(o.requestTimeoutMs);

  return {
    server,
    guard,
    setSecureContext(opts) {
      server.setSecureContext(opts);
      if (typeof opts.cert === "string") identity.addOwnCertificate(opts.cert);
    },
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const a = server.address();
          resolve(typeof a === "object" && a ? { host: a.address, port: a.port } : { host, port });
        });
      });
    },
    async close(graceMs = 5000) {
      const closed = new Promise<void>((r) => server.close(() => r()));
      // GOAWAY lets in-flight streams finish; HTTP/1.1 sockets close when idle.
      for (const s of sessions) s.close();
      closing = true;
      for (const sock of sockets) if (sock.alpnProtocol !== "h2" && !busy.get(sock)) sock.end();
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const sock of sockets) sock.destroy();
      }, graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}
