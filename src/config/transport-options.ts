// Options of the transport that the agent configuration carries (the TLS
// material it names, connection bounds, controller certificate rules).
// Declared here because config sits below transport in the layers
// (scripts/layout/check.mjs): transport imports them from here.

export interface ConnectionLimits {
  /** A TLS handshake must complete within this (node's own default is 120 s). */
  handshakeTimeoutMs: number;
  /** After the handshake, the first request must start within this. */
  firstRequestTimeoutMs: number;
  /** A request body must arrive in full within this from its headers. */
  bodyTimeoutMs: number;
  /** Connections still in their TLS handshake; beyond it the oldest is dropped. */
  maxPendingHandshakes: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of each session. */
  maxStreamsPerSession: number;
  /** Requests in flight over all connections (HTTP/1.1 and HTTP/2). */
  maxRequests: number;
  /** Unary calls whose work is in progress, cancelled or not (call-limit.ts). */
  maxCalls: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  handshakeTimeoutMs: 5_000,
  firstRequestTimeoutMs: 10_000,
  bodyTimeoutMs: 60_000,
  maxPendingHandshakes: 256,
  maxStreamsPerSession: 100,
  maxRequests: 2_000,
  maxCalls: 256,
};

export interface ClientCertRules {
  /** Subjects as the agent logs them ("CN=controller,O=..."); empty = any. */
  subjects: string[];
  /** SHA-256 fingerprints, hex with or without colons, any case; empty = any. */
  sha256: string[];
}

export interface TlsMaterial {
  ca: string;
  key: string;
  cert: string;
}
