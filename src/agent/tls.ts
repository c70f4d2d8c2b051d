// The agent's TLS material: load it, check it, and rotate the server
// certificate at run time without dropping established connections.
import { readFileSync } from "node:fs";
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import type { SecureContextOptions } from "node:tls";
import { invalid } from "../errors.js";
import { writeFileAtomic } from "../system/fs-atomic.js";

export interface ParsedBundle {
  keyPem: string;
  certPem: string; // leaf first, then chain
  leaf: X509Certificate;
  key: KeyObject;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/**
 * Splits a PEM bundle into key and certificates, and checks that the key
 * matches the first certificate. Errors carry the messages controllers know.
 */
export function parsePemBundle(pem: string): ParsedBundle {
  const blocks = [...pem.matchAll(BLOCK)].map((m) => ({ type: m[1]!, text: m[0] }));
  const certs = blocks.filter((b) => b.type === "CERTIFICATE");
  const keys = blocks.filter((b) => /PRIVATE KEY$/.test(b.type));
  if (certs.length === 0) throw invalid("No certificate found", "", "NO_CERTIFICATE");
  if (keys.length === 0) throw invalid("No RSA key found", "", "NO_PRIVATE_KEY");
  let leaf: X509Certificate;
  let key: KeyObject;
  try {
    leaf = new X509Certificate(certs[0]!.text);
  } catch (e) {
    throw invalid("No certificate found", `certificate cannot be parsed: ${(e as Error).message}`, "NO_CERTIFICATE");
  }
  try {
    key = createPrivateKey(keys[0]!.text);
  } catch (e) {
    throw invalid("No RSA key found", `private key cannot be parsed: ${(e as Error).message}`, "NO_PRIVATE_KEY");
  }
  if (!leaf.checkPrivateKey(key)) throw invalid("Certificate and key do not match", "", "KEY_MISMATCH");
  return { keyPem: keys[0]!.text + "\n", certPem: certs.map((c) => c.text).join("\n") + "\n", leaf, key };
}

export interface TlsMaterial {
  ca: string;
  key: string;
  cert: string;
}

export function loadTlsMaterial(caFile: string, bundleFile: string): TlsMaterial {
  const ca = readFileSync(caFile, "utf8");
  const b = parsePemBundle(readFileSync(bundleFile, "utf8"));
  return { ca, key: b.keyPem, cert: b.certPem };
}

/** Server TLS options shared by every listener: client certificates required. */
export function serverTlsOptions(m: TlsMaterial): SecureContextOptions & { requestCert: true; rejectUnauthorized: true } {
  return {
    ca: m.ca,
    key: m.key,
    cert: m.cert,
    minVersion: "TLSv1.2",
    requestCert: true,
    rejectUnauthorized: true,
  };
}

export interface TlsControl {
  /** Validates and installs a new server key+certificate; persists it. */
  rotate(pem: string): Promise<{ subject: string; notAfter: string }>;
}

export function createTlsControl(
  bundleFile: string,
  current: TlsMaterial,
  apply: (opts: SecureContextOptions) => void,
): TlsControl {
  let material = current;
  return {
    async rotate(pem: string) {
      const b = parsePemBundle(pem);
      const next = { ...material, key: b.keyPem, cert: b.certPem };
      // Install first: if node rejects the material the file stays as it was.
      apply({ ca: next.ca, key: next.key, cert: next.cert, minVersion: "TLSv1.2" });
      await writeFileAtomic(bundleFile, b.keyPem + b.certPem, 0o600);
      material = next;
      return { subject: b.leaf.subject, notAfter: b.leaf.validTo };
    },
  };
}
