// The verified client certificate's subject, computed once per connection
// instead of once per request: getPeerCertificate() builds the whole
// certificate object (~60 µs), and a keep-alive controller sends many
// requests on one connection. The certificate of a connection cannot change
// (the server never renegotiates), so the first answer stands for its life.
import type { Socket } from "node:net";
import type { NodeRequest } from "./node-http.js";

const subjects = new WeakMap<object, string>();

/**
 * The connection a request arrived on: the TLS socket for HTTP/1.1, the
 * session for HTTP/2 (whose `req.socket` is a new proxy per stream).
 */
function connectionOf(req: NodeRequest): object | undefined {
  const stream = (req as { stream?: { session?: object } }).stream;
  return stream?.session ?? req.socket ?? undefined;
}

/** `subjectOf(req.socket)`, remembered for the request's connection. */
export function cachedPeerSubject(req: NodeRequest, subjectOf: (s: Socket | undefined) => string): string {
  const conn = connectionOf(req);
  if (!conn) return subjectOf(req.socket as Socket | undefined);
  let s = subjects.get(conn);
  if (s === undefined) {
    s = subjectOf(req.socket as Socket | undefined);
    subjects.set(conn, s);
  }
  return s;
}
