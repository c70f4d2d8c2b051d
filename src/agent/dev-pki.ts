// A local PKI for --dev mode and tests: a CA, a server certificate for the
// agent (CN and SAN = amphora id, SAN 127.0.0.1 and localhost too, as the
// Octavia controller checks the amphora id) and a client certificate.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "../system/exec.js";
import { writeFileAtomic } from "../system/fs-atomic.js";

export interface PkiPaths {
  dir: string;
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** key + certificate in one file, the form Octavia's agent_server_cert takes. */
  serverBundle: string;
  clientCert: string;
  clientKey: string;
}

export function pkiPaths(dir: string): PkiPaths {
  return {
    dir,
    ca: join(dir, "ca.pem"),
    caKey: join(dir, "ca-key.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server-key.pem"),
    serverBundle: join(dir, "server-bundle.pem"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client-key.pem"),
  };
}

const ossl = (args: string[]) => runChecked("openssl", args, { timeoutMs: 30_000 });

async function newKey(path: string): Promise<void> {
  await ossl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]);
  await import("node:fs/promises").then((fs) => fs.chmod(path, 0o600));
}

/** Issues a certificate for `keyPath` signed by the CA in `p`. */
export async function issueCertificate(
  p: PkiPaths,
  opts: { keyPath: string; certPath: string; cn: string; sans?: string[]; client?: boolean; days?: number },
): Promise<void> {
  const csr = `${opts.certPath}.csr`;
  const ext = `${opts.certPath}.ext`;
  const san = (opts.sans ?? []).map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(",");
  await writeFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      `extendedKeyUsage=${opts.client ? "clientAuth" : "serverAuth,clientAuth"}`,
      san ? `subjectAltName=${san}` : "",
    ].join("\n"),
  );
  await ossl(["req", "-new", "-key", opts.keyPath, "-subj", `/CN=${opts.cn}`, "-out", csr]);
  await ossl([
    "x509", "-req", "-in", csr, "-CA", p.ca, "-CAkey", p.caKey, "-CAcreateserial", "-days", String(opts.days ?? 825),
    "-sha256", "-extfile", ext, "-out", opts.certPath,
  ]);
  const { unlink } = await import("node:fs/promises");
  await unlink(csr).catch(() => {});
  await unlink(ext).catch(() => {});
}

/** Creates a fresh CA in `dir` (ca.pem, ca-key.pem). */
export async function createCa(dir: string, cn = "amphora-agent dev CA"): Promise<PkiPaths> {
  const p = pkiPaths(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await newKey(p.caKey);
  await ossl(["req", "-x509", "-new", "-key", p.caKey, "-subj", `/CN=${cn}`, "-days", "3650", "-sha256",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", p.ca]);
  return p;
}

/**
 * Makes (or reuses) the dev PKI in `dir`. Existing files are kept so the
 * client certificate a user already configured keeps working.
 */
export async function ensureDevPki(dir: string, amphoraId: string): Promise<{ paths: PkiPaths; created: boolean }> {
  const p = pkiPaths(dir);
  if ([p.ca, p.serverCert, p.serverKey, p.clientCert, p.clientKey, p.serverBundle].every((f) => existsSync(f))) {
    return { paths: p, created: false };
  }
  await createCa(dir);
  await newKey(p.serverKey);
  await issueCertificate(p, { keyPath: p.serverKey, certPath: p.serverCert, cn: amphoraId, sans: [amphoraId, "localhost", "127.0.0.1", "::1"] });
  await newKey(p.clientKey);
  await issueCertificate(p, { keyPath: p.clientKey, certPath: p.clientCert, cn: "amphora-dev-client", client: true });
  const bundle = (await readFile(p.serverKey, "utf8")) + (await readFile(p.serverCert, "utf8"));
  await writeFileAtomic(p.serverBundle, bundle, 0o600);
  return { paths: p, created: true };
}
