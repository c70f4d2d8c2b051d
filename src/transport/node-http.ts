// What connect-node hands a server fallback (Node's request and response)
// and who the verified peer of a connection is: a leaf of transport, so the
// server and the modules it uses import these without importing the server.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { connectNodeAdapter } from "@connectrpc/connect-node";

type NodeHandler = Parameters<typeof connectNodeAdapter>[0]["fallback"] & {};

export type NodeRequest = Parameters<NodeHandler>[0];

export type NodeResponse = Parameters<NodeHandler>[1];

/** Serves a request the RPC router did not match; returns false if it did not either. */
export type FallbackHandler = (req: NodeRequest, res: NodeResponse) => boolean | Promise<boolean>;

export function peerSubject(socket: Socket | TLSSocket | undefined): string {
  const s = socket as TLSSocket | undefined;
  const cert = s?.getPeerCertificate?.();
  if (!cert || !cert.subject) return "";
  return Object.entries(cert.subject).map(([k, v]) => `${k}=${v}`).join(",");
}
