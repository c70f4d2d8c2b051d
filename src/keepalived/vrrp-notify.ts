// keepalived's VRRP state changes, as keepalived itself reports them.
//
// Octavia's VRRP configuration has no notify hook, and uploaded notify
// scripts are refused by the config policy (they would run as root). So the
// agent installs its own: keepalived runs a small configuration the agent
// writes (keepalived.run.conf: `include` of the stored configuration, then
// `global_defs { notify_fifo <stateDir>/vrrp/.notify.fifo }`), and keepalived
// 2.2.7 writes one line per state change into that FIFO:
//   INSTANCE "amt_vip" MASTER 150
//   GROUP "sync_1" BACKUP 0
// (MASTER, BACKUP, FAULT, and STOP when keepalived shuts down). No script
// runs: the agent reads the FIFO itself. The FIFO's name starts with a dot,
// which a check script name never may (check-script.ts), so an uploaded
// configuration cannot make the agent write over it.
//
// The agent makes the FIFO just before it starts keepalived (so nothing
// appears in <stateDir>/vrrp/ before VRRP is used), and opens it read-write
// and non-blocking: it never sees an end of file when keepalived restarts,
// and keepalived (which opens it read-write too) never blocks on it. Lines
// written while no agent ran wait in the pipe (up to its 64 KiB) and are
// read at the next agent start. A FIFO removed or replaced meanwhile is
// made and opened again at the next keepalived start.
import { constants, fstat, open, type Stats } from "node:fs";
import { lstat, mkdir, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import { silentLogger, type Logger } from "../log.js";
import { runChecked } from "../system/exec.js";
import { checkScriptDir } from "./check-script.js";

export type VrrpState = "MASTER" | "BACKUP" | "FAULT" | "STOP";

export interface VrrpStateChange {
  /** vrrp_instance or vrrp_sync_group name. */
  instance: string;
  group: boolean;
  state: VrrpState;
  priority: number;
}

/** Where keepalived writes state changes for the agent. */
export function notifyFifoPath(stateDir: string): string {
  return join(checkScriptDir(stateDir), ".notify.fifo");
}

/** The configuration keepalived runs: the stored one plus the agent's notify FIFO. */
export function renderRunConfig(storedConfig: string, fifo: string): string {
  return [
    "# Written by amphora-agent (src/keepalived/vrrp-notify.ts) at every keepalived start:",
    "# the stored VRRP configuration, and the FIFO through which keepalived tells the",
    "# agent of VRRP state changes (WatchEvents).",
    `include ${storedConfig}`,
    "global_defs {",
    `  notify_fifo ${fifo}`,
    "}",
    "",
  ].join("\n");
}

const STATES = new Set<VrrpState>(["MASTER", "BACKUP", "FAULT", "STOP"]);

/** One FIFO line; undefined for anything else (other keepalived notices). */
export function parseNotifyLine(line: string): VrrpStateChange | undefined {
  const m = /^(INSTANCE|GROUP)\s+"([^"]*)"\s+([A-Z]+)(?:\s+(\d+))?\s*$/.exec(line.trim());
  if (!m || !STATES.has(m[3] as VrrpState)) return undefined;
  return { instance: m[2]!, group: m[1] === "GROUP", state: m[3] as VrrpState, priority: Number(m[4] ?? 0) };
}

/** Reads the FIFO and calls `onChange` for every state change keepalived writes. */
export class VrrpNotifyReader {
  private socket?: Socket;
  /** Inode of the FIFO being read (to notice one removed or replaced). */
  private ino = 0;
  private rest = "";

  constructor(
    readonly fifo: string,
    private readonly onChange: (c: VrrpStateChange) => void,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** At agent start: reads the FIFO if one exists (what keepalived wrote while no agent ran). */
  async open(): Promise<void> {
    const st = await lstat(this.fifo).catch(() => undefined);
    // Never a reason not to start: the next keepalived start tries again (ensure).
    if (st?.isFIFO()) await this.openFifo().catch((e: Error) => this.logger.warn({ err: e.message, fifo: this.fifo }, "could not open keepalived's notify FIFO"));
  }

  /** Before keepalived starts: the FIFO exists and is the one being read. */
  async ensure(): Promise<void> {
    await mkdir(join(this.fifo, ".."), { recursive: true, mode: 0o700 });
    let st = await lstat(this.fifo).catch(() => undefined);
    if (st && !st.isFIFO()) await rm(this.fifo, { force: true, recursive: false });
    if (!st || !st.isFIFO()) {
      await runChecked("mkfifo", ["-m", "600", this.fifo], { logger: this.logger });
      st = await lstat(this.fifo);
    }
    if (this.socket && st.ino === this.ino) return;
    this.close();
    await this.openFifo();
  }

  private async openFifo(): Promise<void> {
    // A plain fd (not a FileHandle, which would close it again when collected).
    const fd = await new Promise<number>((resolve, reject) =>
      open(this.fifo, constants.O_RDWR | constants.O_NONBLOCK, (e, n) => (e ? reject(e) : resolve(n))));
    this.ino = await new Promise<number>((resolve) => fstat(fd, (e, st: Stats) => resolve(e ? 0 : st.ino)));
    // A pipe fd as a libuv stream: reads as data arrives, no thread blocked.
    const s = new Socket({ fd, readable: true, writable: false });
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => this.take(chunk));
    s.on("error", (e) => this.logger.warn({ err: e.message, fifo: this.fifo }, "reading keepalived's notify FIFO failed"));
    this.socket = s;
  }

  private take(chunk: string): void {
    const lines = (this.rest + chunk).split("\n");
    this.rest = lines.pop() ?? "";
    // A line never grows without bound (keepalived's are short).
    if (this.rest.length > 4096) this.rest = "";
    for (const line of lines) {
      if (!line.trim()) continue;
      const c = parseNotifyLine(line);
      if (!c) {
        this.logger.debug({ line }, "keepalived notify line ignored");
        continue;
      }
      this.logger.info({ ...c }, "VRRP state changed");
      try {
        this.onChange(c);
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, "VRRP state listener failed");
      }
    }
  }

  close(): void {
    // The socket owns the fd: destroying it closes it.
    this.socket?.destroy();
    this.socket = undefined;
    this.ino = 0;
  }
}
