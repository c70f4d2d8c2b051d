// Where a load balancer's files live. One folder per load balancer under
// <stateDir>/lb/<lb_id>/, certificates under <certDir>/<lb_id>/. Every path
// goes through safeJoin so no id can escape the state directory.
import { safeJoin } from "../system/fs-atomic.js";
import { invalid } from "../errors.js";
import { isUuid } from "../system/ids.js";

export function checkLbId(lbId: string): string {
  if (!isUuid(lbId)) throw invalid(`load balancer id must be a UUID, got ${JSON.stringify(lbId.slice(0, 80))}`, "", "INVALID_ID");
  return lbId.toLowerCase();
}

export interface LbPaths {
  dir: string;
  config: string;
  lastGood: string;
  meta: string;
  pidFile: string;
  masterSocket: string;
  serverState: string;
  certDir: string;
  /** `<stateDir>/<lb_id>.sock`: the stats socket Octavia's configs declare (removed with the load balancer). */
  octaviaStatsSocket: string;
}

/** Unix socket paths are limited to 107 bytes on Linux. */
const MAX_SOCKET_PATH = 107;

export function lbRoot(stateDir: string): string {
  return safeJoin(stateDir, "lb");
}

export function lbPaths(stateDir: string, certDir: string, lbId: string): LbPaths {
  const id = checkLbId(lbId);
  const dir = safeJoin(lbRoot(stateDir), id);
  const p: LbPaths = {
    dir,
    config: safeJoin(dir, "haproxy.cfg"),
    lastGood: safeJoin(dir, "haproxy.cfg.last-good"),
    meta: safeJoin(dir, "meta.json"),
    pidFile: safeJoin(dir, "haproxy.pid"),
    masterSocket: safeJoin(dir, "master.sock"),
    serverState: safeJoin(dir, "servers.state"),
    certDir: safeJoin(certDir, id),
    octaviaStatsSocket: safeJoin(stateDir, `${id}.sock`),
  };
  if (Buffer.byteLength(p.masterSocket) > MAX_SOCKET_PATH) {
    throw invalid(`state directory too deep for a unix socket path: ${p.masterSocket}`, "", "PATH_TOO_LONG");
  }
  return p;
}

/** Shared scratch folder for candidate configs (never read by haproxy at run time). */
export function scratchDir(stateDir: string): string {
  return safeJoin(stateDir, "tmp");
}

export function userGroupFile(stateDir: string): string {
  return safeJoin(stateDir, "haproxy-user-group.cfg");
}
