// Which verified client certificates may act as a controller. The CA check
// (node's requestCert/rejectUnauthorized) is not enough: Octavia's
// certificate generator gives every amphora's server certificate the
// clientAuth usage too, so one amphora's key pair would drive every other
// amphora's agent. The agent therefore never accepts its own certificate
// (or any certificate with its own public key) as a client, and an
// operator may list the controller certificates allowed (subjects as the
// agent logs them, or SHA-256 fingerprints).
import { X509Certificate } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { peerSubject } from "./node-http.js";
import type { ClientCertRules } from "../config/transport-options.js";

/** Canonical form of a fingerprint: upper-case hex, no separators. */
export const normFingerprint = (f: string) => f.replace(/^sha256:/i, "").replace(/[:\s]/g, "").toUpperCase();

const spki = (c: X509Certificate) => c.publicKey.export({ type: "spki", format: "der" }).toString("base64");

export interface ClientIdentity {
  /** The reason the connection's client certificate is refused, or undefined when it may call. */
  refusal(sock: TLSSocket): string | undefined;
  /** Adds the agent's (new) server certificate: it is never a client either. */
  addOwnCertificate(pem: string): void;
}

export function createClientIdentity(ownCertPem: string, rules: ClientCertRules): ClientIdentity {
  const ownFingerprints = new Set<string>();
  const ownKeys = new Set<string>();
  const addOwnCertificate = (pem: string) => {
    const c = new X509Certificate(pem);
    ownFingerprints.add(normFingerprint(c.fingerprint256));
    ownKeys.add(spki(c));
  };
  addOwnCertificate(ownCertPem);
  const subjects = new Set(rules.subjects.map((x) => x.trim()));
  const fingerprints = new Set(rules.sha256.map(normFingerprint));
  const listed = subjects.size + fingerprints.size > 0;
  return {
    addOwnCertificate,
    refusal(sock) {
      const c = sock.getPeerX509Certificate?.();
      if (!c) return "no client certificate";
      const fp = normFingerprint(c.fingerprint256);
      if (ownFingerprints.has(fp)) return "the client presented the agent's own server certificate";
      if (ownKeys.has(spki(c))) return "the client certificate has the agent's own public key";
      if (!listed || fingerprints.has(fp)) return undefined;
      // Only an allow-list needs the subject (getPeerCertificate builds the
      // whole object; the request path reads it once per connection too).
      const subject = peerSubject(sock);
      if (!subjects.has(subject)) {
        return `client certificate ${JSON.stringify(subject)} (sha256 ${c.fingerprint256}) is not one of the allowed controller certificates`;
      }
      return undefined;
    },
  };
}
