// CertificateService: request -> CertificateStore -> response.
import type { ServiceImpl } from "@connectrpc/connect";
import { CertificateService } from "../gen/amphora/v1/certificate_pb.js";
import type { CertificateStore } from "../certs/store.js";

export function certificateService(certs: CertificateStore): Partial<ServiceImpl<typeof CertificateService>> {
  return {
    async putCertificate(req) {
      const r = await certs.put(req.lbId, req.filename, req.pem);
      return { message: "OK", details: `${r.subject.replace(/\n/g, ",")} valid until ${r.notAfter}`, md5sum: r.md5sum };
    },
    async getCertificateMd5(req) {
      return { md5sum: await certs.md5(req.lbId, req.filename) };
    },
    async deleteCertificate(req) {
      await certs.delete(req.lbId, req.filename);
      return { message: "OK", details: "" };
    },
  };
}
