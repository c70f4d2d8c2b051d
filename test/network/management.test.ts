// Unit: the addresses the agent is reached on, from /proc/net/tcp{,6} text,
// and for this very process (a server it listens with and a client
// connected to it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect } from "node:net";
import { once } from "node:events";
import { addressesReachedOn, managementAddresses, parseProcTcp, procAddress } from "../../src/network/management.js";

test("/proc/net/tcp addresses: IPv4, IPv6, IPv4-mapped", () => {
  assert.equal(procAddress("0100007F"), "127.0.0.1");
  assert.equal(procAddress("010200C0"), "192.0.2.1");
  assert.equal(procAddress("00000000000000000000000001000000"), "::1");
  assert.equal(procAddress("B80D0120000000000000000001000000"), "2001:db8::1");
  assert.equal(procAddress("0000000000000000FFFF0000010200C0"), "192.0.2.1");
  const rows = parseProcTcp(
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
    "   0: 010200C0:24C3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n",
  );
  assert.deepEqual(rows, [{ local: "192.0.2.1", port: 9411, state: "0A", inode: "4242" }]);
});

test("this process: the local address of a connection to its listening port counts; loopback and wildcards do not", async (t) => {
  const srv = createServer(() => {});
  srv.listen(0, "127.0.0.2");
  await once(srv, "listening");
  t.after(() => srv.close());
  const port = (srv.address() as { port: number }).port;
  const c = connect(port, "127.0.0.2");
  await once(c, "connect");
  t.after(() => c.destroy());
  assert.ok((await addressesReachedOn()).has("127.0.0.2"), "listen address and connection");
  // Loopback is refused by its own rule; a specific bind host is added, a wildcard is not.
  assert.deepEqual([...(await managementAddresses("0.0.0.0"))].filter((a) => a.startsWith("127.")), []);
  assert.ok((await managementAddresses("192.0.2.7")).has("192.0.2.7"));
});
