// Certificates a load balancer's haproxy serves (TLS bundles, client CA /
// CRL files, crt-lists: see upload-kinds.ts), one folder per load balancer
// under the certificate directory, files mode 0600. File names are checked so
// nothing escapes the folder.
import { readFile, unlink, mkdir } from "node:fs/promises";
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { NAME_MAX, safeJoin, writeFileAtomic } from "../system/fs-atomic.js";
import { invalid, notFound } from "../errors.js";
import { checkUpload, type UploadKind } from "./upload-kinds.js";
import { isUuid } from "../system/ids.js";

const NAME = /^[A-Za-z0-9._-]+\.pem$/;

export interface Serializer {
  run<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

const direct: Serializer = { run: (_k, fn) => fn() };

export class CertificateStore {
  constructor(
    private readonly certDir: string,
    /** Shared with the load balancer manager so a cert change and a config change do not interleave. */
    private readonly lock: Serializer = direct,
  ) {}

  /** The absolute path of a certificate (the one a config's `crt` should name). */
  path(lbId: string, filename: string): string {
    if (!isUuid(lbId)) throw invalid("Invalid request", `load balancer id must be a UUID, got ${JSON.stringify(lbId.slice(0, 80))}`, "INVALID_ID");
    if (!NAME.test(filename) || filename.includes("..") || Buffer.byteLength(filename) > NAME_MAX) {
      throw invalid("Invalid request", `bad certificate file name ${JSON.stringify(filename.slice(0, 80))}: expected letters, digits, ".", "_", "-" ending in .pem`, "INVALID_FILENAME");
    }
    return safeJoin(this.certDir, lbId.toLowerCase(), filename);
  }

  async put(lbId: string, filename: string, pem: string): Promise<{ md5sum: string; subject: string; notAfter: string; kind: UploadKind }> {
    const file = this.path(lbId, filename);
    const facts = await checkUpload(resolve(this.certDir, lbId.toLowerCase()), filename, pem);
    return this.lock.run(lbId.toLowerCase(), async () => {
      await mkdir(safeJoin(this.certDir, lbId.toLowerCase()), { recursive: true, mode: 0o700 });
      // Stored exactly as uploaded: the controller compares our md5 with its own.
      await writeFileAtomic(file, pem, 0o600);
      return { md5sum: createHash("md5").update(pem).digest("hex"), subject: facts.subject, notAfter: facts.notAfter, kind: facts.kind };
    });
  }

  async md5(lbId: string, filename: string): Promise<string> {
    const file = this.path(lbId, filename);
    try {
      return createHash("md5").update(await readFile(file)).digest("hex");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw notFound("Certificate Not Found", `${filename} of load balancer ${lbId}`, "CERT_NOT_FOUND");
      throw e;
    }
  }

  async delete(lbId: string, filename: string): Promise<void> {
    const file = this.path(lbId, filename);
    await this.lock.run(lbId.toLowerCase(), async () => {
      try {
        await unlink(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") throw notFound("Certificate Not Found", `${filename} of load balancer ${lbId}`, "CERT_NOT_FOUND");
        throw e;
      }
    });
  }
}
