// The typed client of one amphora agent: one HTTP/2 connection with mutual
// TLS, shared by the clients of every service, reopened on demand after it
// drops, closed by close().
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isIP } from "node:net";
import tls from "node:tls";
import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { SystemService } from "../gen/amphora/v1/system_pb.js";
import { LoadBalancerService } from "../gen/amphora/v1/load_balancer_pb.js";
import { CertificateService } from "../gen/amphora/v1/certificate_pb.js";
import { NetworkService } from "../gen/amphora/v1/network_pb.js";
import { KeepalivedService } from "../gen/amphora/v1/keepalived_pb.js";
import { StatsService } from "../gen/amphora/v1/stats_pb.js";
import { EventService } from "../gen/amphora/v1/events_pb.js";
import { errorInterceptor, socketErrorInterceptor, toAmphoraError } from "./errors.js";
import { retryInterceptor, type RetryOptions } from "./retry.js";

/** "grpcweb" is buf's spelling of "grpc-web"; both are accepted. */
export type AmphoraProtocol = "connect" | "grpc" | "grpc-web" | "grpcweb";

export const DEFAULT_TIMEOUT_MS = 30_000;

export interface AmphoraClientOptions {
  /** e.g. https://192.0.2.10:9443 */
  baseUrl: string;
  /** PEM of the CA that signed the agent's server certificate. */
  ca: string | Buffer;
  /** PEM of this client's certificate (the agent requires one). */
  cert: string | Buffer;
  /** PEM of this client's private key. */
  key: string | Buffer;
  /** Wire protocol (default "connect", binary). */
  protocol?: AmphoraProtocol;
  /** Connect protocol only: JSON instead of binary Protobuf (easier to read on the wire). */
  json?: boolean;
  /**
   * Deadline of every unary call in ms, retries included. Without it each
   * method gets a default that fits it (see defaultDeadlineMs). A call can
   * pass its own `timeoutMs`; 0 means none. Streams have none by default.
   */
  timeoutMs?: number;
  /**
   * Name to check the agent's certificate against, when it is not the host
   * of baseUrl: Octavia's agents carry the amphora id as CN/SAN.
   */
  serverName?: string;
  /** Retry policy of side-effect-free calls; false disables retries. */
  retry?: RetryOptions | false;
  /** Extra interceptors, run inside the error and retry handling. */
  interceptors?: Interceptor[];
}

export interface AmphoraClient {
  readonly baseUrl: string;
  /** The `timeoutMs` option, or DEFAULT_TIMEOUT_MS: what a multi-call flow budgets per call. */
  readonly timeoutMs: number;
  readonly transport: Transport;
  readonly system: Client<typeof SystemService>;
  readonly loadBalancer: Client<typeof LoadBalancerService>;
  readonly certificate: Client<typeof CertificateService>;
  readonly network: Client<typeof NetworkService>;
  readonly keepalived: Client<typeof KeepalivedService>;
  readonly stats: Client<typeof StatsService>;
  readonly events: Client<typeof EventService>;
  /** Closes the connection; calls in flight fail with `canceled`. */
  close(): void;
  /** Whether close() was called. */
  readonly closed: boolean;
}

export function createAmphoraClient(o: AmphoraClientOptions): AmphoraClient {
  const baseUrl = o.baseUrl.replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(o.baseUrl)} (expected e.g. https://192.0.2.10:9443)`);
  }
  if (url.protocol !== "https:") throw new TypeError(`the agent only speaks https, got ${JSON.stringify(o.baseUrl)}`);
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // The socket is made here, not by http2.connect, to see its errors: with
  // TLS 1.3 the agent rejects a client certificate after the handshake,
  // and the only trace connect-es keeps of that is a canceled stream.
  const socketErrors = { last: undefined as { error: Error; at: number } | undefined };
  const tlsOptions = {
    createConnection: (authority: URL) => {
      const host = authority.hostname.replace(/^\[|\]$/g, "");
      const sock = tls.connect({
        host,
        port: Number(authority.port || 443),
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        ALPNProtocols: ["h2"],
        servername: o.serverName ?? (isIP(host) ? undefined : host),
      });
      // An agent that accepted the client sends its HTTP/2 SETTINGS at once.
      // Node servers check the client certificate after the handshake and
      // destroy the socket when they reject it: no alert, no data; a FIN,
      // or a RST when our request was still unread.
      let secured = false;
      sock.once("secureConnect", () => (secured = true));
      const rejected = (cause?: Error) =>
        Object.assign(
          new Error("the agent closed the connection right after the TLS handshake: it rejected the client certificate", { cause }),
          { code: "ERR_AMPHORA_CLIENT_CERT_REJECTED" },
        );
      sock.on("error", (error: NodeJS.ErrnoException) => {
        const silentReject = secured && sock.bytesRead === 0 && (error.code === "ECONNRESET" || error.code === "EPIPE");
        socketErrors.last = { error: silentReject ? rejected(error) : error, at: Date.now() };
      });
      sock.on("end", () => {
        if (secured && sock.bytesRead === 0) socketErrors.last = { error: rejected(), at: Date.now() };
      });
      return sock;
    },
  };
  // One session per client: every service client and every call share it.
  // Pings notice an agent that vanished without closing the connection,
  // so a long-lived stream fails (and can reconnect) instead of hanging.
  const sessionManager = new Http2SessionManager(
    url,
    { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
    tlsOptions,
  );
  const interceptors: Interceptor[] = [
    errorInterceptor(baseUrl),
    ...(o.retry === false ? [] : [retryInterceptor(o.retry ?? {})]),
    socketErrorInterceptor((since) => (socketErrors.last && socketErrors.last.at >= since ? socketErrors.last.error : undefined)),
    ...(o.interceptors ?? []),
  ];
  const common = {
    baseUrl,
    httpVersion: "2" as const,
    sessionManager,
    interceptors,
  };
  const protocol = o.protocol ?? "connect";
  let closed = false;
  const transport =
    protocol === "grpc" ? createGrpcTransport(common)
    : protocol === "grpc-web" || protocol === "grpcweb" ? createGrpcWebTransport(common)
    : protocol === "connect" ? createConnectTransport({ ...common, useBinaryFormat: !o.json })
    : (() => {
        throw new TypeError(`unknown protocol ${JSON.stringify(protocol)} (connect, grpc or grpcweb)`);
      })();
  return {
    baseUrl,
    timeoutMs,
    transport,
    system: typedClient(SystemService, transport, baseUrl, o.timeoutMs),
    loadBalancer: typedClient(LoadBalancerService, transport, baseUrl, o.timeoutMs),
    certificate: typedClient(CertificateService, transport, baseUrl, o.timeoutMs),
    network: typedClient(NetworkService, transport, baseUrl, o.timeoutMs),
    keepalived: typedClient(KeepalivedService, transport, baseUrl, o.timeoutMs),
    stats: typedClient(StatsService, transport, baseUrl, o.timeoutMs),
    events: typedClient(EventService, transport, baseUrl, o.timeoutMs),
    get closed() {
      return closed;
    },
    close() {
      closed = true;
      sessionManager.abort();
    },
  };
}

type AnyFn = (req: unknown, o?: CallOptions) => unknown;

/**
 * Default deadline of a method: reads answer fast or the agent is in
 * trouble; haproxy start/stop/reload and delete wait for processes (a
 * graceful stop up to its stop timeout, 10 s by default); other changes run
 * a validation or a program. Streams run until cancelled.
 */
export function defaultDeadlineMs(m: DescMethod): number {
  if (m.methodKind !== "unary") return 0;
  if (m.name === "ControlLoadBalancer" || m.name === "DeleteLoadBalancer") return 60_000;
  return m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ? 10_000 : DEFAULT_TIMEOUT_MS;
}

/**
 * The generated client, with every error turned into an AmphoraError. The
 * interceptor does most of that, but connect-es replaces whatever an
 * interceptor threw by the abort reason when the deadline passes or the
 * caller aborts, so the last word is here.
 */
function typedClient<S extends DescService>(service: S, transport: Transport, agent: string, timeoutMs: number | undefined): Client<S> {
  const inner = createClient(service, transport) as unknown as Record<string, AnyFn>;
  const out: Record<string, AnyFn> = {};
  for (const m of service.methods) {
    const fn = inner[m.localName]!;
    const procedure = `${service.typeName}/${m.name}`;
    const deadline = m.methodKind === "unary" ? (timeoutMs ?? defaultDeadlineMs(m)) : 0;
    // connect-es: timeoutMs <= 0 means no deadline.
    const withDeadline = (o?: CallOptions): CallOptions => ({ ...o, timeoutMs: o?.timeoutMs ?? deadline });
    const wrap = (e: unknown, o: CallOptions) => toAmphoraError(e, { agent, procedure, timeoutMs: o.timeoutMs || undefined });
    if (m.methodKind === "unary") {
      out[m.localName] = (req, o) => {
        const co = withDeadline(o);
        return (fn(req, co) as Promise<unknown>).catch((e) => Promise.reject(wrap(e, co)));
      };
    } else if (m.methodKind === "server_streaming") {
      out[m.localName] = (req, o) =>
        (async function* () {
          const co = withDeadline(o);
          try {
            yield* fn(req, co) as AsyncIterable<unknown>;
          } catch (e) {
            throw wrap(e, co);
          }
        })();
    } else {
      out[m.localName] = fn;
    }
  }
  return out as unknown as Client<S>;
}

export interface CredentialPaths {
  ca: string;
  cert: string;
  key: string;
}

/** Where an agent started with `--dev --state-dir DIR` keeps the dev PKI. */
export function devStateCredentialPaths(stateDir: string): CredentialPaths {
  const pki = join(stateDir, "pki");
  return { ca: join(pki, "ca.pem"), cert: join(pki, "client.pem"), key: join(pki, "client-key.pem") };
}

/** Reads the three PEM files; the error names the file that could not be read. */
export function readCredentials(p: CredentialPaths): { ca: Buffer; cert: Buffer; key: Buffer } {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`cannot read ${what} file ${path}: ${err.code === "ENOENT" ? "no such file" : err.message}`);
    }
  };
  return { ca: read("CA", p.ca), cert: read("client certificate", p.cert), key: read("client key", p.key) };
}
