// Parses and checks a PEM bundle (private key, certificate, chain), for
// haproxy's certificates and for the agent's own TLS alike: there must be a
// certificate and a private key, and a key must belong to the first
// certificate. Messages are the ones Octavia controllers know.
//
// Time: blocks are found in one pass (pem-blocks.ts); parsing each one is
// native and linear, but 1 MiB of certificates is ~300 ms of it, so the
// parse yields the event loop between blocks (Pacer). Private keys are
// limited to MAX_KEYS: Octavia's bundle has exactly one, and thousands of
// small keys, each parsed and compared with the leaf, would take seconds.
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { invalid } from "../errors.js";
import { isPrivateKeyType, pemBlocks } from "./pem-blocks.js";
import { Pacer } from "../system/pacer.js";

/** Private keys a bundle may carry (Octavia's has one). */
export const MAX_KEYS = 4;

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

export async function parsePemBundle(pem: string): Promise<ParsedBundle> {
  const pace = new Pacer();
  const blocks = pemBlocks(pem);
  const certs = blocks.filter((b) => b.type === "CERTIFICATE");
  const keys = blocks.filter((b) => isPrivateKeyType(b.type));
  if (certs.length === 0) throw invalid("No certificate found", "the PEM has no CERTIFICATE block", "NO_CERTIFICATE");
  if (keys.length === 0) throw invalid("No RSA key found", "the PEM has no PRIVATE KEY block", "NO_PRIVATE_KEY");
  if (keys.length > MAX_KEYS) throw invalid("Invalid certificate bundle", `the PEM has ${keys.length} private keys; a bundle carries the key of its certificate (at most ${MAX_KEYS})`, "TOO_MANY_KEYS");
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certs[0]!.text);
  } catch (e) {
    throw invalid("No certificate found", `certificate cannot be parsed: ${(e as Error).message}`, "NO_CERTIFICATE");
  }
  for (const c of certs.slice(1)) {
    await pace.step();
    try {
      new X509Certificate(c.text);
    } catch (e) {
      throw invalid("Invalid certificate chain", `a chain certificate cannot be parsed: ${(e as Error).message}`, "BAD_CHAIN");
    }
  }
  let match: { text: string; key: KeyObject } | undefined;
  for (const k of keys) {
    await pace.step();
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
