// The version-3 heartbeat datagram the health managers decode:
// zlib(JSON, level 9) followed by the hex HMAC-SHA256 of the compressed
// bytes under the shared heartbeat key.
import { createHmac, timingSafeEqual } from "node:crypto";
import { deflateSync, inflateSync } from "node:zlib";
import type { LoadBalancerStats } from "../stats/model.js";

export interface HeartbeatListener {
  status: string;
  stats: { tx: number; rx: number; conns: number; totconns: number; ereq: number };
}

export interface HeartbeatPool {
  status: string;
  members: Record<string, string>;
}

export interface HeartbeatMessage {
  id: string;
  seq: number;
  ver: 3;
  listeners: Record<string, HeartbeatListener>;
  pools: Record<string, HeartbeatPool>;
}

const HMAC_HEX_LEN = 64;

/**
 * Builds the message from stats whose `delta` is "since the previous
 * heartbeat". Load balancers whose haproxy does not run are left out.
 */
export function buildHeartbeat(amphoraId: string, seq: number, lbs: LoadBalancerStats[]): HeartbeatMessage {
  const msg: HeartbeatMessage = { id: amphoraId, seq, ver: 3, listeners: {}, pools: {} };
  for (const lb of lbs) {
    if (!lb.running) continue;
    for (const l of lb.listeners) {
      const d = l.delta;
      msg.listeners[l.listenerId] = {
        status: l.rawStatus,
        stats: {
          tx: d?.bytesOut ?? 0,
          rx: d?.bytesIn ?? 0,
          conns: l.currentSessions,
          totconns: d?.totalSessions ?? 0,
          ereq: d?.requestErrors ?? 0,
        },
      };
    }
    for (const p of lb.pools) {
      const members: Record<string, string> = {};
      for (const m of p.members) members[m.memberId] = m.rawStatus;
      msg.pools[p.name] = { status: p.status === "UNKNOWN" ? "DOWN" : p.status, members };
    }
  }
  return msg;
}

function hmacHex(key: string, payload: Buffer): string {
  return createHmac("sha256", key).update(payload).digest("hex");
}

export function encodeHeartbeat(msg: HeartbeatMessage, key: string): Buffer {
  const payload = deflateSync(Buffer.from(JSON.stringify(msg)), { level: 9 });
  return Buffer.concat([payload, Buffer.from(hmacHex(key, payload), "ascii")]);
}

/** What a health manager does with a datagram; throws if the HMAC does not match. */
export function decodeHeartbeat(datagram: Buffer, key: string): HeartbeatMessage {
  if (datagram.length <= HMAC_HEX_LEN) throw new Error("heartbeat datagram too short");
  const payload = datagram.subarray(0, datagram.length - HMAC_HEX_LEN);
  const got = datagram.subarray(datagram.length - HMAC_HEX_LEN);
  const want = Buffer.from(hmacHex(key, payload), "ascii");
  if (!timingSafeEqual(got, want)) throw new Error("heartbeat HMAC does not match the key");
  return JSON.parse(inflateSync(payload).toString("utf8")) as HeartbeatMessage;
}
