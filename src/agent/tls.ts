// The agent's TLS material: load it, check it, and rotate the server
// certificate at run time without dropping established connections.
import { readFileSync } from "node:fs";
import type { SecureContextOptions } from "node:tls";
import { parsePemBundle } from "../certs/pem-bundle.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { failed } from "../errors.js";
import { KeyedLock } from "../haproxy/keyed-lock.js";

export interface TlsMaterial {
  ca: string;
  key: string;
  cert: string;
}

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
  /** Validates and installs a new server key+certificate; persists it. */
  rotate(pem: string): Promise<{ subject: string; notAfter: string }>;
}

export function createTlsControl(
  bundleFile: string,
  current: TlsMaterial,
  apply: (opts: SecureContextOptions) => void,
): TlsControl {
  let material = current;
  const lock = new KeyedLock(); // one rotation at a time
  const install = (m: TlsMaterial) => apply({ ca: m.ca, key: m.key, cert: m.cert, minVersion: "TLSv1.2" });
  return {
    rotate: (pem: string) =>
      lock.run("tls", async () => {
        const b = await parsePemBundle(pem);
        const next = { ...material, key: b.keyPem, cert: b.certPem };
        // Install first: if node rejects the material the file stays as it was.
        install(next);
        try {
          await writeFileAtomic(bundleFile, b.keyPem + b.certPem, 0o600);
        } catch (e) {
          // Not persisted: serve the old one again, or a restart would
          // silently switch back to it.
          install(material);
          throw failed("Could not store the agent certificate", (e as Error).message, "CERT_NOT_STORED");
        }
        material = next;
        return { subject: b.leaf.subject, notAfter: b.leaf.validTo };
      }),
  };
}
