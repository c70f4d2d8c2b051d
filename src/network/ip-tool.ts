// Thin typed layer over `ip -j ...` inside one network namespace. Every call
// goes through src/system/exec.ts; nothing here knows about RPC.
import { failed } from "../errors.js";
import { run, runChecked } from "../system/exec.js";
import type { Logger } from "../log.js";

export interface IpLink {
  ifindex: number;
  ifname: string;
  address?: string;
  mtu: number;
  flags: string[];
  operstate?: string;
}

export interface IpAddr {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[];
}

export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  table?: string;
  flags?: string[];
}

export interface IpRule {
  priority: number;
  src?: string;
  srclen?: number;
  table: string;
}

/** Runs `ip` commands in one namespace ("" = the agent's own). */
export class IpTool {
  constructor(
    readonly netns: string,
    private readonly logger?: Logger,
  ) {}

  private opts() {
    return { netns: this.netns, timeoutMs: 10_000, logger: this.logger };
  }

  async json<T>(args: string[]): Promise<T> {
    const r = await runChecked("ip", ["-j", ...args], this.opts());
    return JSON.parse(r.stdout || "[]") as T;
  }

  /** Runs `ip ARGS`, throwing a `failed` DomainError with ip's stderr on error. */
  async exec(args: string[]): Promise<void> {
    await runChecked("ip", args, this.opts());
  }

  /** Runs `ip ARGS` and reports success instead of throwing (for undo steps). */
  async tryExec(args: string[]): Promise<boolean> {
    return (await run("ip", args, this.opts())).exitCode === 0;
  }

  /** Sets kernel parameters of this namespace (`sysctl -w KEY=VALUE ...`). */
  async sysctl(settings: Record<string, string | number>): Promise<void> {
    await runChecked("sysctl", ["-q", "-w", ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)], this.opts());
  }

  /** Keeps the other IPv4 addresses of `dev` when its primary one is deleted. */
  async promoteSecondaries(dev: string): Promise<void> {
    await this.sysctl({ [`net.ipv4.conf.${dev.replace(/\./g, "/")}.promote_secondaries`]: 1 });
  }

  links(): Promise<IpLink[]> {
    return this.json<IpLink[]>(["link", "show"]);
  }

  async linkByMac(mac: string): Promise<IpLink | undefined> {
    const want = mac.toLowerCase();
    return (await this.links()).find((l) => l.address?.toLowerCase() === want && l.ifname !== "lo");
  }

  addrs(ifname: string): Promise<IpAddr[]> {
    return this.json<IpAddr[]>(["addr", "show", "dev", ifname]);
  }

  /** Routes of one table for one family ("main" or a number). */
  async routes(family: 4 | 6, table: string): Promise<IpRoute[]> {
    const r = await run("ip", ["-j", `-${family}`, "route", "show", "table", table], this.opts());
    // A table that holds no route yet does not exist for the kernel.
    if (r.exitCode !== 0 && /table does not exist/i.test(r.stderr)) return [];
    if (r.exitCode !== 0) throw failed(`ip route show table ${table} exited with ${r.exitCode}`, r.stderr.trim(), "COMMAND_FAILED");
    return JSON.parse(r.stdout || "[]") as IpRoute[];
  }

  rules(family: 4 | 6): Promise<IpRule[]> {
    return this.json<IpRule[]>([`-${family}`, "rule", "show"]);
  }
}
