// Parses and checks a PEM bundle (private key, certificate, chain), for
// haproxy's certificates and for the agent's own TLS alike: there must be a
// certificate and a private key, and a key must belong to the first
// certificate. Messages are the ones Octavia controllers know.
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { invalid } from "../errors.js";

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

export interface BundleFacts {
  subject: string;
  notAfter: string;
  chainLength: number;
}

export interface ParsedBundle extends BundleFacts {
  /** The private key that matches the leaf. */
  keyPem: string;
  /** Leaf first, then the chain. */
  certPem: string;
  leaf: X509Certificate;
  key: KeyObject;
}

export function parsePemBundle(pem: string): ParsedBundle {
  const blocks = [...pem.matchAll(BLOCK)].map((m) => ({ type: m[1]!, text: m[0] }));
  const certs = blocks.filter((b) => b.type === "CERTIFICATE");
  const keys = blocks.filter((b) => /PRIVATE KEY$/.test(b.type));
  if (certs.length === 0) throw invalid("No certificate found", "the PEM has no CERTIFICATE block", "NO_CERTIFICATE");
  if (keys.length === 0) throw invalid("No RSA key found", "the PEM has no PRIVATE KEY block", "NO_PRIVATE_KEY");
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certs[0]!.text);
  } catch (e) {
    throw invalid("No certificate found", `certificate cannot be parsed: ${(e as Error).message}`, "NO_CERTIFICATE");
  }
  for (const c of certs.slice(1)) {
    try {
      new X509Certificate(c.text);
    } catch (e) {
      throw invalid("Invalid certificate chain", `a chain certificate cannot be parsed: ${(e as Error).message}`, "BAD_CHAIN");
    }
  }
  let match: { text: string; key: KeyObject } | undefined;
  for (const k of keys) {
    let key: KeyObject;
    try {
      key = createPrivateKey(k.text);
    } catch (e) {
      throw invalid("No RSA key found", `private key cannot be parsed: ${(e as Error).message}`, "NO_PRIVATE_KEY");
    }
    if (!match && leaf.checkPrivateKey(key)) match = { text: k.text, key };
  }
  if (!match) throw invalid("Certificate and key do not match", `no private key matches ${leaf.subject.replace(/\n/g, ",")}`, "KEY_MISMATCH");
  return {
    subject: leaf.subject,
    notAfter: leaf.validTo,
    chainLength: certs.length - 1,
    keyPem: match.text + "\n",
    certPem: certs.map((c) => c.text).join("\n") + "\n",
    leaf,
    key: match.key,
  };
}
