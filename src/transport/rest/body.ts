// Reads a request body up to a limit while it streams in: a declared
// Content-Length over the limit is refused before a byte is read, and an
// undeclared (chunked) body is refused as soon as the bytes read pass it,
// so a 1 GB upload never sits in memory.
import type { Readable } from "node:stream";

export class BodyTooLarge extends Error {
  constructor(readonly limit: number, readonly seen: number, readonly declared: boolean) {
    super(
      declared
        ? `Content-Length ${seen} exceeds the limit of ${limit} bytes`
        : `body exceeds the limit of ${limit} bytes (read ${seen} so far)`,
    );
  }
}

/** The client closed the request before its body ended: nobody to answer. */
export class ClientGone extends Error {}

/** Throws BodyTooLarge at once when Content-Length already says too much. */
export function checkDeclaredLength(contentLength: string | string[] | undefined, limit: number): void {
  const v = Array.isArray(contentLength) ? contentLength[0] : contentLength;
  if (v === undefined || !/^\d+$/.test(v.trim())) return;
  const n = Number(v.trim());
  if (n > limit) throw new BodyTooLarge(limit, n, true);
}

// Plain listeners rather than `for await`: leaving an async iterator early
// destroys the request, which on HTTP/1.1 destroys the socket before the
// 413 answer is written.
export function readLimited(req: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer | string) => {
      const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      size += b.length;
      if (size > limit) {
        done();
        req.pause();
        reject(new BodyTooLarge(limit, size, false));
        return;
      }
      chunks.push(b);
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    // A request stream only fails when its connection does.
    const onError = (e: Error) => {
      done();
      reject(new ClientGone(`the request failed while reading its body: ${e.message}`));
    };
    const onClose = () => {
      done();
      reject(new ClientGone("the client closed the request before its body ended"));
    };
    req.on("data", onData);
    req.on("close", onClose);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}
