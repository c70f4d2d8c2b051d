import { pino, type Logger } from "pino";

export type { Logger };

// Secrets are redacted by key wherever they appear in a log object.
const secretKeys = ["key", "pem", "privateKey", "keyPem", "serverKey", "heartbeat_key", "heartbeatKey", "password"];
export const redactPaths = [...secretKeys, ...secretKeys.map((k) => `*.${k}`), ...secretKeys.map((k) => `*.*.${k}`)];

/** Longest a log line waits in memory before it is written. */
export const LOG_FLUSH_MS = 10;
/** Bytes buffered that start a write at once, without waiting for the timer. */
const LOG_BATCH_BYTES = 8 * 1024;

export function createLogger(level = process.env.AMPHORA_LOG_LEVEL ?? "info"): Logger {
  // Lines go to stdout asynchronously and in batches: a line waits at most
  // LOG_FLUSH_MS (or until 8 KiB are buffered), then everything buffered
  // is written with one write(). Writing as soon as no write was in flight
  // made one write() per line under load (each completes in microseconds),
  // about a tenth of a Connect call's CPU.
  //
  // The batch is kept here as an array of lines, not in sonic-boom's own
  // buffer (its minLength): that one appends each line to one growing
  // string and asks for its UTF-8 length at every write, which flattens
  // (copies) the whole batch per line, up to 8 KiB copied per call.
  // flush/flushSync/end (what pino calls when the process ends) hand the
  // batch over first, so nothing buffered is lost at exit.
  const dest = pino.destination({ dest: 1, sync: false });
  const write = dest.write.bind(dest);
  let batch: string[] = [];
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const handOver = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!batch.length) return;
    const text = batch.length === 1 ? batch[0]! : batch.join("");
    batch = [];
    bytes = 0;
    write(text);
  };
  const onTimer = () => {
    timer = undefined;
    try {
      handOver();
    } catch {
      // destroyed (the process is ending): nothing left to write to
    }
  };
  dest.write = (line: string) => {
    batch.push(line);
    bytes += line.length;
    if (bytes >= LOG_BATCH_BYTES) handOver();
    // One timer per batch, none while idle.
    else if (!timer) (timer = setTimeout(onTimer, LOG_FLUSH_MS)).unref();
    return true;
  };
  for (const m of ["flush", "flushSync", "end"] as const) {
    const own = (dest[m] as (...a: unknown[]) => unknown).bind(dest);
    (dest as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
      handOver();
      return own(...a);
    };
  }
  return pino({ level, base: { svc: "amphora-agent" }, redact: { paths: redactPaths, censor: "[redacted]" } }, dest);
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: "silent" });

/** The fields of the one line a call writes when it ends without an error. */
export interface CallLine {
  method: string;
  protocol: string;
  peer: string | undefined;
  ms: number;
}

/**
 * Writes `logger.info({...line}, msg)` as pino would (same level, time,
 * bindings and keys), but as one string built directly: pino's object path
 * (copying the fields, walking and serializing them) cost ~14 µs of CPU per
 * call in the server, a tenth of what the agent adds to a Connect call.
 * Nothing is written when info is not enabled.
 */
export function callLineWriter(logger: Logger, msg: string): (line: CallLine, outcome: "ok" | "canceled") => void {
  const s = pino.symbols;
  const l = logger as unknown as Record<symbol, unknown>;
  const stream = l[s.streamSym] as { write(line: string): unknown };
  const time = l[s.timeSym] as () => string;
  const bindings = l[s.chindingsSym] as string;
  const head = `{"level":${logger.levels.values.info}`;
  const tail = `,${JSON.stringify(l[s.messageKeySym] as string)}:${JSON.stringify(msg)}}\n`;
  return (c, outcome) => {
    if (!logger.isLevelEnabled("info")) return;
    // As JSON.stringify (and pino) do, a field that is undefined is left out.
    const peer = c.peer === undefined ? "" : `,"peer":${JSON.stringify(c.peer)}`;
    stream.write(`${head}${time()}${bindings},"method":${JSON.stringify(c.method)},"protocol":${JSON.stringify(c.protocol)}${peer},"ms":${c.ms},"outcome":"${outcome}"${tail}`);
  };
}
