// What a controller puts at /1.0/loadbalancer/{lb}/certificates/{name}.pem.
// Octavia's controller sends three kinds of file through that one route:
//  - a listener's or pool's TLS bundle (`<cert id>.pem`: key, certificate,
//    chain): checked strictly (parsePemBundle), the errors the reference lists;
//  - a "secret" (client CA bundle or CRL) named after the SHA-1 of its own
//    bytes (`<sha1 hex>.pem`), with no private key by nature;
//  - a haproxy crt-list (`<listener id>.pem`): one line per certificate file
//    of this load balancer, no PEM at all.
// A secret is recognised by its name matching its content's SHA-1, so a
// leaf certificate uploaded without its key under any other name is still
// refused ("No RSA key found"), and a crt-list must name only files of this
// load balancer's own certificate folder.
import { createHash, X509Certificate } from "node:crypto";
import { join } from "node:path";
import { invalid } from "../errors.js";
import { parsePemBundle } from "./pem-bundle.js";
import { Pacer } from "../system/pacer.js";
import { isPrivateKeyType, pemBlocks, type PemBlock } from "./pem-blocks.js";
const FILE_NAME = /^[A-Za-z0-9._-]+\.pem$/;

export type UploadKind = "bundle" | "secret" | "crt-list";

export interface UploadFacts {
  kind: UploadKind;
  /** Subject of the (first) certificate; "" for a crt-list or a CRL. */
  subject: string;
  notAfter: string;
}

/**
 * Checks an upload for load balancer folder `lbDir` (absolute, as haproxy
 * will read it) under file name `filename`; throws the reference's
 * `invalid` errors.
 */
export async function checkUpload(lbDir: string, filename: string, body: string): Promise<UploadFacts> {
  const blocks = pemBlocks(body);
  if (blocks.length === 0) {
    if (looksLikeCrtList(body)) return checkCrtList(lbDir, body);
    throw invalid("No certificate found", "the upload has no PEM block and is not a crt-list", "NO_CERTIFICATE");
  }
  const stem = filename.slice(0, -".pem".length).toLowerCase();
  const hasKey = blocks.some((b) => isPrivateKeyType(b.type));
  if (!hasKey && /^[0-9a-f]{40}$/.test(stem) && createHash("sha1").update(body).digest("hex") === stem) {
    return checkSecret(blocks);
  }
  const b = await parsePemBundle(body);
  return { kind: "bundle", subject: b.subject, notAfter: b.notAfter };
}

/** A client CA bundle or CRL: certificates and CRLs only, each one readable. */
async function checkSecret(blocks: PemBlock[]): Promise<UploadFacts> {
  const pace = new Pacer();
  let first: X509Certificate | undefined;
  for (const { text, type, body } of blocks) {
    await pace.step();
    if (type === "CERTIFICATE") {
      try {
        const cert = new X509Certificate(text);
        first ??= cert;
      } catch (e) {
        throw invalid("No certificate found", `a certificate cannot be parsed: ${(e as Error).message}`, "NO_CERTIFICATE");
      }
    } else if (type === "X509 CRL") {
      // node:crypto has no CRL parser: a DER SEQUENCE in valid base64 is as
      // far as we check; haproxy -c reads it when a config names it.
      const der = Buffer.from(body.replace(/\s+/g, ""), "base64");
      if (der.length < 2 || der[0] !== 0x30) throw invalid("Invalid CRL", "the X509 CRL block is not DER", "BAD_CRL");
    } else {
      throw invalid("No certificate found", `unexpected ${type} block in a CA or CRL file`, "NO_CERTIFICATE");
    }
  }
  return { kind: "secret", subject: first?.subject ?? "", notAfter: first?.validTo ?? "" };
}

function looksLikeCrtList(body: string): boolean {
  const lines = body.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  return lines.length > 0 && lines.every((l) => l.startsWith("/"));
}

/** crt-list options whose argument is a file haproxy reads. */
const FILE_OPTIONS = new Set(["ca-file", "crl-file", "ca-verify-file"]);

/** Whether `path` is a .pem file directly in `lbDir`. */
function inFolder(lbDir: string, path: string): boolean {
  const slash = path.lastIndexOf("/");
  const name = path.slice(slash + 1);
  return path.slice(0, slash) === lbDir && FILE_NAME.test(name) && !name.includes("..") && join(lbDir, name) === path;
}

/**
 * Each line: the path of a certificate file in this load balancer's folder,
 * optionally followed by haproxy's `[ssl options]` and SNI filters. A file
 * an option names (ca-file, crl-file, ca-verify-file...; haproxy reads it
 * as root) must be in the same folder too, as must any word that looks
 * like a path (starts with "/" or ".").
 */
function checkCrtList(lbDir: string, body: string): UploadFacts {
  const refuse = (what: string) =>
    invalid("Invalid crt-list", `crt-list ${what} is not a .pem file of this load balancer's certificate folder ${lbDir}`, "BAD_CRT_LIST");
  for (const line of body.split("\n")) {
    const l = line.trim();
    if (!l || l.startsWith("#")) continue;
    const [path, ...rest] = l.split(/\s+/);
    if (!inFolder(lbDir, path!)) throw refuse(`entry ${JSON.stringify(path!.slice(0, 200))}`);
    const words = rest.join(" ").replace(/[[\]]/g, " ").split(/\s+/);
    words.forEach((word, i) => {
      const file = FILE_OPTIONS.has(words[i - 1] ?? "") || word.startsWith("/") || word.startsWith(".");
      if (file && !inFolder(lbDir, word)) throw refuse(`option file ${JSON.stringify(word.slice(0, 200))}`);
    });
  }
  return { kind: "crt-list", subject: "", notAfter: "" };
}
