// A raw node:https client shaped like the Octavia controller's: TLS 1.2
// pinned, a client certificate, HTTP/1.1 with keep-alive, and the server
// certificate checked against the amphora id (not the IP address).
import https from "node:https";
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from "node:tls";
import type { Socket } from "node:net";

export interface RestResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  contentType: string;
  text: string;
  /** Number of the connection that carried it (1 = the first one this client opened). */
  connection: number;
  tlsVersion: string;
  json<T = unknown>(): T;
}

export interface RestRequest {
  body?: string | Buffer;
  json?: unknown;
  headers?: Record<string, string>;
}

export interface TlsIdentity {
  ca: string;
  cert: string;
  key: string;
}

export class RestClient {
  readonly agent: https.Agent;
  private readonly ids = new WeakMap<Socket, number>();
  private opened = 0;

  constructor(readonly baseUrl: string, tls: TlsIdentity, readonly amphoraId?: string) {
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
    });
  }

  /** Distinct connections used so far. */
  get connections(): number {
    return this.opened;
  }

  request(method: string, path: string, r: RestRequest = {}): Promise<RestResponse> {
    // A path starting with "//" is sent as written (new URL would read it as a host).
    const raw = path.startsWith("//");
    const url = raw ? new URL(this.baseUrl) : new URL(path, this.baseUrl);
    const headers: Record<string, string> = { ...(r.headers ?? {}) };
    let body: string | Buffer | undefined = r.body;
    if (r.json !== undefined) {
      body = JSON.stringify(r.json);
      headers["content-type"] = "application/json";
    }
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    return new Promise((resolve, reject) => {
      let sock: TLSSocket | undefined;
      const req = https.request(
        {
          method,
          host: url.hostname,
          port: url.port,
          path: raw ? path : url.pathname + url.search,
          agent: this.agent,
          headers,
          // As the controller: the certificate must name the amphora.
          ...(this.amphoraId
            ? {
                servername: this.amphoraId,
                checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(this.amphoraId!, cert),
              }
            : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              contentType: String(res.headers["content-type"] ?? ""),
              text,
              connection: sock ? this.ids.get(sock) ?? 0 : 0,
              tlsVersion: sock?.getProtocol?.() ?? "",
              json<T>() {
                return JSON.parse(text) as T;
              },
            });
          });
        },
      );
      req.on("socket", (s: Socket) => {
        sock = s as TLSSocket;
        if (!this.ids.has(s)) this.ids.set(s, ++this.opened);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
