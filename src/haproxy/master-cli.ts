// Client of haproxy's master CLI (the -S socket). One command per
// connection; the master answers and closes only after we half-close.
import { connect, type IpcNetConnectOpts } from "node:net";
import { DomainError } from "../errors.js";

/**
 * Sends one command ("show proc", "reload", "@1 show stat") and returns the
 * whole answer. Rejects with an `unavailable` DomainError when the socket
 * refuses (the master is re-executing during a reload) or on timeout.
 */
export async function masterCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return (await masterCommandInto(socketPath, command, new AnswerBuffer(), timeoutMs)).toString("utf8");
}

/**
 * Where a big answer is read, kept from one poll to the next: reading
 * `show stat` of a big load balancer allocated ~60 socket buffers of 64 KB
 * and a 3.7 MB Buffer to join them at every poll, memory outside V8's heap
 * that V8 still counts against its old generation until a full collection.
 * Here the reads land in one shared chunk and are copied into this buffer,
 * which grows to the biggest answer seen and is reused.
 */
export class AnswerBuffer {
  private buf = Buffer.allocUnsafe(0);
  private length = 0;

  /** The last answer read into it: valid until the next read. */
  get bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  /** Bytes held (at least the last answer). */
  get capacity(): number {
    return this.buf.length;
  }

  /**
   * Starts the next answer. A buffer more than four times the previous
   * answer (and over 1 MiB) is given back: a load balancer that shrank
   * does not hold its old size for good.
   */
  reset(): void {
    if (this.buf.length > SHRINK_ABOVE && this.buf.length > 4 * this.length) this.buf = Buffer.allocUnsafe(Math.max(4096, 2 * this.length));
    this.length = 0;
  }

  append(src: Buffer, n: number): void {
    if (this.length + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(4096, 2 * (this.length + n)));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    src.copy(this.buf, this.length, 0, n);
    this.length += n;
  }
}

const SHRINK_ABOVE = 1024 * 1024;

/** Every read of masterCommandInto lands here first (copied out before the next read can happen). */
const READ_CHUNK = Buffer.allocUnsafe(64 * 1024);

/**
 * masterCommand with the answer read into `into` (see AnswerBuffer);
 * resolves with its bytes, valid until the next read into it. One read at
 * a time per buffer (the stats collector polls a load balancer once at a time).
 */
export function masterCommandInto(socketPath: string, command: string, into: AnswerBuffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    into.reset();
    const onread = {
      buffer: READ_CHUNK,
      callback: (n: number) => {
        into.append(READ_CHUNK, n);
        return true;
      },
    };
    // (onread works for unix sockets too; the typings offer it for TCP only.)
    const sock = connect({ path: socketPath, onread } as IpcNetConnectOpts);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new DomainError("unavailable", `haproxy master CLI did not answer "${command}" within ${timeoutMs} ms`, socketPath));
    }, timeoutMs);
    sock.on("connect", () => sock.end(`${command}\n`));
    sock.on("error", (e) => {
      clearTimeout(timer);
      reject(new DomainError("unavailable", `haproxy master CLI unreachable: ${e.message}`, socketPath));
    });
    sock.on("close", () => {
      clearTimeout(timer);
      resolve(into.bytes);
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
