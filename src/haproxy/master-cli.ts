// Client of haproxy's master CLI (the -S socket). One command per
// connection; the master answers and closes only after we half-close.
import { connect } from "node:net";
import { DomainError } from "../errors.js";

/**
 * Sends one command ("show proc", "reload", "@1 show stat") and returns the
 * whole answer. Rejects with an `unavailable` DomainError when the socket
 * refuses (the master is re-executing during a reload) or on timeout.
 */
export async function masterCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return (await masterCommandBytes(socketPath, command, timeoutMs)).toString("utf8");
}

/**
 * The same, the answer as bytes: for big answers read where they lie
 * (`show stat` of a big load balancer is ~4 MB; as one string it would go
 * to V8's old generation at every poll).
 */
export function masterCommandBytes(socketPath: string, command: string, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(socketPath);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new DomainError("unavailable", `haproxy master CLI did not answer "${command}" within ${timeoutMs} ms`, socketPath));
    }, timeoutMs);
    sock.on("connect", () => sock.end(`${command}\n`));
    sock.on("data", (c) => chunks.push(c));
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(new DomainError("unavailable", `haproxy master CLI unreachable: ${e.message}`, socketPath));
    });
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
  });
}

/**
 * `attempt` tried up to `tries` times, 30, 60, 90 ms apart (~180 ms in
 * all): the master refuses connections, or answers worker commands with an
 * error, for a few ms while it re-executes during a reload. For reads that
 * run outside the load balancer's lock (statuses); the last error is thrown.
 */
export async function retryWhileReexecuting<T>(attempt: () => Promise<T>, tries = 4): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (n >= tries) throw e;
      await new Promise((r) => setTimeout(r, 30 * n));
    }
  }
}
