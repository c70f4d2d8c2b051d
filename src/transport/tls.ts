// The agent's TLS material: load it, check it, and rotate the server
// certificate at run time without dropping established connections.
import { readFileSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";
import { parsePemBundle } from "../certs/pem-bundle.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { failed, invalid, notFound } from "../errors.js";
import { X509Certificate } from "node:crypto";
import { KeyedLock } from "../system/keyed-lock.js";
import type { TlsMaterial } from "../config/transport-options.js";

export async function loadTlsMaterial(caFile: string, bundleFile: string): Promise<TlsMaterial> {
  const ca = readFileSync(caFile, "utf8");
  const b = await parsePemBundle(readFileSync(bundleFile, "utf8"));
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
  /**
   * Validates and installs a new server key+certificate; persists it and
   * keeps the replaced one. Unless `force`, the certificate must come from
   * the current one's issuer (same issuer name and authority key
   * identifier): controllers trust the agent through that issuer.
   */
  rotate(pem: string, force?: boolean): Promise<{ subject: string; notAfter: string; forced: boolean }>;
  /** Serves the certificate the last rotation replaced again; the current one becomes the kept one. */
  restorePrevious(): Promise<{ subject: string; notAfter: string }>;
}

/** Where the certificate a rotation replaced is kept (beside the bundle, mode 0600). */
export const previousBundlePath = (bundleFile: string) => `${bundleFile}.previous`;

/** DER length at `i` (after the tag): [length, where the content starts]. */
function derLength(b: Buffer, i: number): [number, number] {
  const first = b[i]!;
  if (first < 0x80) return [first, i + 1];
  const n = first & 0x7f;
  let len = 0;
  for (let k = 0; k < n; k++) len = len * 256 + b[i + 1 + k]!;
  return [len, i + 1 + n];
}

/** The keyIdentifier of a certificate's authority key identifier extension (hex), if it has one. */
export function authorityKeyId(cert: X509Certificate): string | undefined {
  const raw = cert.raw;
  // OID 2.5.29.35: 06 03 55 1d 23, then an optional critical BOOLEAN, then an OCTET STRING
  // holding SEQUENCE { [0] keyIdentifier, ... }.
  const at = raw.indexOf(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x23]));
  if (at < 0) return undefined;
  let i = at + 5;
  if (raw[i] === 0x01) i += 3; // BOOLEAN critical
  if (raw[i] !== 0x04) return undefined;
  let [, start] = derLength(raw, i + 1);
  if (raw[start] !== 0x30) return undefined;
  [, start] = derLength(raw, start + 1);
  if (raw[start] !== 0x80) return undefined;
  const [len, idStart] = derLength(raw, start + 1);
  return raw.subarray(idStart, idStart + len).toString("hex");
}

/** Why `next` is not from `current`'s issuer, or "". */
function issuerMismatch(current: X509Certificate, next: X509Certificate): string {
  const one = (s: string) => s.replace(/\n/g, ",");
  if (current.issuer !== next.issuer) return `its issuer ${one(next.issuer)} is not the current certificate's issuer ${one(current.issuer)}`;
  const a = authorityKeyId(current);
  const b = authorityKeyId(next);
  if (a !== b) return `its authority key identifier ${b ?? "(none)"} is not the current certificate's ${a ?? "(none)"}`;
  return "";
}

export function createTlsControl(
  bundleFile: string,
  current: TlsMaterial,
  apply: (opts: SecureContextOptions) => void,
): TlsControl {
  let material = current;
  const lock = new KeyedLock(); // one rotation at a time
  const install = (m: TlsMaterial) => apply({ ca: m.ca, key: m.key, cert: m.cert, minVersion: "TLSv1.2" });
  const previousFile = previousBundlePath(bundleFile);
  /** Serves `b` from now on, persisted; the material it replaces is kept as the previous one. */
  const switchTo = async (b: { keyPem: string; certPem: string }) => {
    const next = { ...material, key: b.keyPem, cert: b.certPem };
    // Install first: if node rejects the material the files stay as they were.
    install(next);
    try {
      await writeFileAtomic(previousFile, material.key + material.cert, 0o600);
      await writeFileAtomic(bundleFile, b.keyPem + b.certPem, 0o600);
    } catch (e) {
      // Not persisted: serve the old one again, or a restart would
      // silently switch back to it.
      install(material);
      throw failed("Could not store the agent certificate", (e as Error).message, "CERT_NOT_STORED");
    }
    material = next;
  };
  return {
    rotate: (pem: string, force = false) =>
      lock.run("tls", async () => {
        const b = await parsePemBundle(pem);
        const now = new X509Certificate(material.cert);
        const why = issuerMismatch(now, b.leaf);
        if (why && !force) {
          throw invalid(
            "Invalid certificate",
            `refused: ${why}; controllers that trust the current issuer could no longer reach the agent. Set force (REST: ?force=true) to rotate anyway; the replaced certificate is kept and RestorePreviousAgentCertificate serves it again`,
            "ISSUER_MISMATCH",
          );
        }
        await switchTo(b);
        return { subject: b.leaf.subject, notAfter: b.leaf.validTo, forced: !!why };
      }),
    restorePrevious: () =>
      lock.run("tls", async () => {
        let text: string;
        try {
          text = readFileSync(previousFile, "utf8");
        } catch {
          throw notFound("No previous agent certificate", "no rotation has replaced a certificate yet", "NO_PREVIOUS_CERTIFICATE");
        }
        const b = await parsePemBundle(text);
        await switchTo(b);
        return { subject: b.leaf.subject, notAfter: b.leaf.validTo };
      }),
  };
}
