// Checks a PEM bundle (private key, certificate, chain) before it is stored
// for haproxy: there must be a certificate and a private key, and the key
// must belong to the first certificate. Messages are the ones Octavia
// controllers know.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { invalid } from "../errors.js";

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

export interface BundleFacts {
  subject: string;
  notAfter: string;
  chainLength: number;
}

export function checkPemBundle(pem: string): BundleFacts {
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
  let matched = false;
  for (const k of keys) {
    let key;
    try {
      key = createPrivateKey(k.text);
    } catch (e) {
      throw invalid("No RSA key found", `private key cannot be parsed: ${(e as Error).message}`, "NO_PRIVATE_KEY");
    }
    if (leaf.checkPrivateKey(key)) matched = true;
  }
  if (!matched) throw invalid("Certificate and key do not match", `no private key matches ${leaf.subject.replace(/\n/g, ",")}`, "KEY_MISMATCH");
  return { subject: leaf.subject, notAfter: leaf.validTo, chainLength: certs.length - 1 };
}
