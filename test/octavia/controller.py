#!/usr/bin/python3
# Octavia 11's own controller-side code (Debian python3-octavia) driving
# real amphora agents, as its controller worker does: the amphora driver
# HaproxyAmphoraLoadBalancerDriver with its keepalived mixin, its Jinja
# templates for haproxy, keepalived, LVS and the agent's config, its
# file-backed local certificate manager, its local certificate generator and
# its health manager's heartbeat receiver.
#
# Only what needs a database is replaced: the data-model objects are built
# here (as the controller would load them), and the listener repository
# update the driver calls when a listener fails is recorded instead of
# written (a recorded failure fails the call). The HTTP calls are never
# mocked: they are only observed (method, path, status, body) for the
# report.
#
#   controller.py setup SPEC.json   PKI, certificates in the cert manager,
#                                   each amphora's amphora-agent.conf
#   controller.py run SPEC.json PHASE   PHASE = single | active-standby
#
# Output: one line per call, "@@ " + JSON
#   {"call", "amphora", "ok", "value"|"error", "http": [...], "ms"}
# and {"checkpoint": NAME, ...} lines after which the script waits for a
# line on stdin (the TypeScript side checks traffic, namespaces, ports).
import datetime
import hashlib
import json
import os
import socket
import ssl
import sys
import time
import traceback
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from oslo_config import cfg
from oslo_log import log as oslo_log

from octavia.common import config as _octavia_config  # noqa: F401 (registers the options)
from octavia.common import data_models as dm
from octavia.network import data_models as nm
from octavia.certificates.generator import local as local_generator
from octavia.certificates.manager import local as local_cert_manager
from octavia.amphorae.backends.agent import agent_jinja_cfg
from octavia.amphorae.drivers.haproxy import rest_api_driver
from octavia.amphorae.drivers.health import heartbeat_udp

CONF = cfg.CONF
PROJECT = "e3cd678b11784734bc366148aa37580e"


def emit(obj):
    sys.stdout.write("@@ " + json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---- configuration ---------------------------------------------------------

def configure(spec, amp_key=None):
    """The controller's octavia.conf, as far as these calls read it."""
    pki = os.path.join(spec["work"], "pki")
    o = CONF.set_override
    o("client_cert", os.path.join(pki, "controller.pem"), "haproxy_amphora")
    o("server_ca", os.path.join(pki, "server-ca.pem"), "haproxy_amphora")
    o("bind_port", spec["bind_port"], "haproxy_amphora")
    # Octavia retries an unreachable agent 120 times every 5 s; a failing
    # agent here should fail the test in seconds, not in ten minutes.
    o("connection_max_retries", 5, "haproxy_amphora")
    o("connection_retry_interval", 1, "haproxy_amphora")
    o("rest_request_read_timeout", 60, "haproxy_amphora")
    o("cert_manager", "local_cert_manager", "certificates")
    o("storage_path", os.path.join(spec["work"], "cert-manager"), "certificates")
    o("ca_certificate", os.path.join(pki, "server-ca.pem"), "certificates")
    o("ca_private_key", os.path.join(pki, "server-ca-key.pem"), "certificates")
    o("heartbeat_key", spec["heartbeat_key"], "health_manager")
    o("heartbeat_interval", 1, "health_manager")
    o("agent_server_ca", os.path.join(pki, "client-ca.pem"), "amphora_agent")
    if amp_key:
        use_amphora(spec, amp_key)


def use_amphora(spec, amp_key):
    """
    Every amphora on this machine has its own base_path (on real amphorae
    all use /var/lib/octavia); the controller renders paths from its own
    [haproxy_amphora] base_path/base_cert_dir, so they follow the amphora
    the next call is for.
    """
    a = spec["amphorae"][amp_key]
    CONF.set_override("base_path", a["base_path"], "haproxy_amphora")
    CONF.set_override("base_cert_dir", a["cert_dir"], "haproxy_amphora")


def init_conf():
    # Octavia's own init registers oslo.log's options too ([DEFAULT] debug, which the agent templater reads).
    oslo_log.register_options(CONF)
    CONF([], project="octavia", default_config_files=[], default_config_dirs=[])


# ---- PKI (setup) -------------------------------------------------------------

def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn, key, issuer_cert=None, issuer_key=None, ca=False, san=None, client=False):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn))
         .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in san]), critical=False)
    if client:
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def _pem(c):
    return c.public_bytes(serialization.Encoding.PEM)


def _write(path, data, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def setup(spec):
    work = spec["work"]
    pki = os.path.join(work, "pki")
    tls = os.path.join(work, "tls")
    os.makedirs(CONF.certificates.storage_path, exist_ok=True)
    # The two CAs of an Octavia deployment: one signs the agents' server
    # certificates (the controller's server_ca), one the controller's client
    # certificate (the agents' agent_server_ca).
    server_ca_key = _key()
    server_ca = _cert("octavia-server-ca", server_ca_key, ca=True)
    client_ca_key = _key()
    client_ca = _cert("octavia-client-ca", client_ca_key, ca=True)
    ctl_key = _key()
    ctl = _cert("controller", ctl_key, client_ca, client_ca_key, client=True)
    _write(os.path.join(pki, "server-ca.pem"), _pem(server_ca))
    _write(os.path.join(pki, "server-ca-key.pem"), _pem_key(server_ca_key))
    _write(os.path.join(pki, "client-ca.pem"), _pem(client_ca))
    _write(os.path.join(pki, "controller.pem"), _pem(ctl) + _pem_key(ctl_key))

    # Each amphora's server certificate, as the controller makes it when it
    # builds the amphora: Octavia's local certificate generator, CN = id.
    gen = local_generator.LocalCertGenerator
    confs = {}
    for key, a in spec["amphorae"].items():
        cert = gen.generate_cert_key_pair(cn=a["id"], validity=2 * 24 * 3600)
        _write(os.path.join(a["dir"], "server.pem"), cert.certificate + cert.private_key)
        # Its amphora-agent.conf, rendered by Octavia's own agent templater
        # with the values the controller's config gives it.
        use_amphora(spec, key)
        CONF.set_override("bind_host", a["lb_network_ip"], "haproxy_amphora")
        CONF.set_override("agent_server_cert", os.path.join(a["dir"], "server.pem"), "amphora_agent")
        CONF.set_override("controller_ip_port_list", [spec["hm_initial"]], "health_manager")
        text = agent_jinja_cfg.AgentJinjaTemplater().build_agent_config(a["id"], a["topology"])
        path = os.path.join(a["dir"], "amphora-agent.conf")
        _write(path, text, 0o644)
        confs[key] = path

    # Listener TLS: a default certificate and an SNI one (both from a CA the
    # client trusts), a client CA with a good and a revoked client
    # certificate, and the CRL revoking it. Stored in Octavia's local
    # (file-backed) certificate manager as Barbican would hold them.
    cm = local_cert_manager.LocalCertManager
    tls_ca_key = _key()
    tls_ca = _cert("listener-ca", tls_ca_key, ca=True)
    refs = {}
    for name, host in (("default", "www.example.org"), ("sni", "sni.example.org")):
        k = _key()
        c = _cert(host, k, tls_ca, tls_ca_key, san=[host])
        refs[name] = cm.store_cert(None, _pem(c), _pem_key(k), intermediates=_pem(tls_ca))
    cli_ca_key = _key()
    cli_ca = _cert("listener-client-ca", cli_ca_key, ca=True)
    good_key, bad_key = _key(), _key()
    good = _cert("good-client", good_key, cli_ca, cli_ca_key, client=True)
    bad = _cert("revoked-client", bad_key, cli_ca, cli_ca_key, client=True)
    now = datetime.datetime.utcnow()
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(cli_ca.subject)
           .last_update(now - datetime.timedelta(minutes=5))
           .next_update(now + datetime.timedelta(days=2))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(bad.serial_number).revocation_date(now - datetime.timedelta(minutes=1)).build())
           .sign(cli_ca_key, hashes.SHA256()))
    # Secrets (a CA bundle, a CRL): the local manager keeps them as <ref>.crt.
    refs["client_ca"] = cm.store_cert(None, _pem(cli_ca), "")
    refs["crl"] = cm.store_cert(None, crl.public_bytes(serialization.Encoding.PEM), "")
    _write(os.path.join(tls, "listener-ca.pem"), _pem(tls_ca))
    _write(os.path.join(tls, "good-client.pem"), _pem(good) + _pem_key(good_key))
    _write(os.path.join(tls, "revoked-client.pem"), _pem(bad) + _pem_key(bad_key))
    _write(os.path.join(work, "refs.json"), json.dumps(refs))
    emit({"setup": {"confs": confs, "refs": refs}})


# ---- observing the HTTP calls (never replacing them) -------------------------

WIRE = []
_orig_request = rest_api_driver.AmphoraAPIClientBase.request


def _observed_request(self, method, amp, path="/", *args, **kwargs):
    r = _orig_request(self, method, amp, path, *args, **kwargs)
    try:
        body = r.text[:400]
    except Exception:  # pragma: no cover
        body = ""
    WIRE.append({"method": method.upper(), "url": r.request.url if r.request else path, "status": r.status_code, "body": body})
    return r


rest_api_driver.AmphoraAPIClientBase.request = _observed_request
# (The clients bind functools.partial(self.request, ...) when built, after this.)

# The one database write the driver makes (a listener whose certificates
# cannot be processed is marked ERROR): recorded, and it fails the call.
LISTENER_ERRORS = []


class _RecordingListenerRepo:
    def update(self, session, id, **kw):
        LISTENER_ERRORS.append({"listener": id, **kw})


rest_api_driver.repo.ListenerRepository = _RecordingListenerRepo
rest_api_driver.db_apis.get_session = lambda *a, **k: None


def jsonable(v):
    try:
        json.dumps(v)
        return v
    except TypeError:
        return repr(v)


def call(spec, name, amp_key, fn, refused=None):
    """Runs one driver call for one amphora and reports it.

    refused: the exception class name the call must end with (a refusal the
    controller is meant to see), or None for a call that must succeed.
    """
    use_amphora(spec, amp_key.split("+")[0])
    WIRE.clear()
    t0 = time.monotonic()
    rec = {"call": name, "amphora": amp_key}
    value = None
    try:
        value = fn()
        rec["ok"] = refused is None
        rec["value"] = jsonable(value)
        if refused:
            rec["error"] = "expected the agent to refuse with %s" % refused
    except Exception as e:  # noqa: BLE001 - every failure is reported
        rec["ok"] = type(e).__name__ == refused
        rec["error" if not rec["ok"] else "refusal"] = "%s: %s" % (type(e).__name__, e)
        if not rec["ok"]:
            rec["trace"] = traceback.format_exc()[-2000:]
    if LISTENER_ERRORS:
        rec["ok"] = False
        rec["error"] = "listener marked ERROR by the driver: %s" % json.dumps(LISTENER_ERRORS)
        LISTENER_ERRORS.clear()
    rec["http"] = list(WIRE)
    rec["ms"] = round((time.monotonic() - t0) * 1000)
    emit(rec)
    return value


def checkpoint(name, **info):
    emit({"checkpoint": name, **info})
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("orchestrator went away at checkpoint %s" % name)


# ---- data model (what the controller loads from its database) ---------------

def amphora(spec, key, lb_id, vip, role, priority):
    a = spec["amphorae"][key]
    return dm.Amphora(
        id=a["id"], load_balancer_id=lb_id, compute_id=str(uuid.uuid4()), status="ALLOCATED",
        lb_network_ip=a["lb_network_ip"], vrrp_ip=a["vrrp_ip"], ha_ip=vip,
        vrrp_port_id="vrrp-port-" + key, ha_port_id="vip-port", role=role,
        vrrp_id=1, vrrp_priority=priority)


def subnet(spec, which):
    s = spec[which]
    return nm.Subnet(id=which, network_id=which + "-net", project_id=PROJECT, cidr=s["cidr"], gateway_ip=s["gateway"], ip_version=4, host_routes=[])


def port(pid, mac, ip, sn):
    return nm.Port(id=pid, mac_address=mac, network_id=sn.network_id, project_id=PROJECT,
                   network=nm.Network(id=sn.network_id, mtu=1500),
                   fixed_ips=[nm.FixedIP(subnet_id=sn.id, ip_address=ip, subnet=sn)])


def network_config(spec, amps, vip_sn):
    out = {}
    for key, amp in amps.items():
        a = spec["amphorae"][key]
        vrrp_port = port(amp.vrrp_port_id, a["vip_mac"], a["vrrp_ip"], vip_sn)
        out[amp.id] = nm.AmphoraNetworkConfig(
            amphora=amp, vip_subnet=vip_sn, vip_port=None, vrrp_subnet=vip_sn, vrrp_port=vrrp_port,
            ha_subnet=vip_sn, ha_port=None, additional_vip_data=[])
    return out


def load_balancer(lb_id, vip, topology, amps):
    lb = dm.LoadBalancer(
        id=lb_id, project_id=PROJECT, name="lb", enabled=True, topology=topology, provisioning_status="ACTIVE",
        operating_status="ONLINE",
        vip=dm.Vip(load_balancer_id=lb_id, ip_address=vip, subnet_id="vip_subnet", network_id="vip_subnet-net", port_id="vip-port"),
        listeners=[], amphorae=list(amps), pools=[], additional_vips=[],
        vrrp_group=dm.VRRPGroup(load_balancer_id=lb_id, vrrp_group_name=lb_id.replace("-", ""), vrrp_auth_type="PASS",
                                vrrp_auth_pass=lb_id.replace("-", "")[:8], advert_int=1))
    for a in amps:
        a.load_balancer = lb
    return lb


def member(pool, m, protocol_port=None):
    return dm.Member(id=str(uuid.uuid4()), project_id=PROJECT, pool_id=pool.id, ip_address=m["ip"],
                     protocol_port=protocol_port or m["port"], weight=1, backup=False, enabled=True,
                     subnet_id="member_subnet", operating_status="ONLINE", provisioning_status="ACTIVE", pool=pool,
                     name=m["name"])


def pool(lb, protocol, members, monitor=False):
    p = dm.Pool(id=str(uuid.uuid4()), project_id=PROJECT, protocol=protocol, lb_algorithm="ROUND_ROBIN", enabled=True,
                operating_status="ONLINE", members=[], load_balancer_id=lb.id, load_balancer=lb, listeners=[],
                l7policies=[], provisioning_status="ACTIVE", tls_enabled=False)
    p.members = [member(p, m) for m in members]
    if monitor:
        p.health_monitor = dm.HealthMonitor(
            id=str(uuid.uuid4()), project_id=PROJECT, pool_id=p.id, type="HTTP", delay=2, timeout=1,
            fall_threshold=3, rise_threshold=2, http_method="GET", url_path="/", expected_codes="200",
            enabled=True, pool=p, provisioning_status="ACTIVE", operating_status="ONLINE")
    lb.pools.append(p)
    return p


def listener(lb, protocol, protocol_port, p, peer_port, **kw):
    # connection_limit: Octavia's default (50,000 per listener) makes haproxy
    # ask for ~375,000 file descriptors; this machine's hard limit is 20,000.
    li = dm.Listener(id=str(uuid.uuid4()), project_id=PROJECT, name=protocol.lower(), load_balancer_id=lb.id,
                     load_balancer=lb, protocol=protocol, protocol_port=protocol_port, connection_limit=1000,
                     enabled=True, provisioning_status="ACTIVE", operating_status="ONLINE",
                     default_pool=p, default_pool_id=p.id if p else None, pools=[p] if p else [],
                     sni_containers=[], peer_port=peer_port, l7policies=[], insert_headers={}, tags=[],
                     client_authentication="NONE", allowed_cidrs=[], **kw)
    if p:
        p.listeners.append(li)
    lb.listeners.append(li)
    return li


def driver_for(spec, key):
    """One driver per amphora: its templaters keep the base paths given at construction."""
    use_amphora(spec, key)
    return rest_api_driver.HaproxyAmphoraLoadBalancerDriver()


# ---- checks made with Octavia's own pieces ------------------------------------

def heartbeat_of(amp_id, timeout_s=15):
    """Waits for a heartbeat of this amphora, decoded by the health manager's own receiver."""
    getter = heartbeat_udp.UDPStatusGetter()
    try:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                obj, src = getter.dorecv()
            except socket.timeout:
                continue
            if obj.get("id") == amp_id:
                obj.pop("recv_time", None)
                return dict(obj, **{"from": src})
        raise TimeoutError("no heartbeat of %s within %ss" % (amp_id, timeout_s))
    finally:
        getter.sock.close()
        getter.health_executor.shutdown(wait=False)
        getter.stats_executor.shutdown(wait=False)


class _Recorder:
    """Stands in for a repository: what the health manager would write."""

    def __init__(self, kind, writes, lb=None):
        self.kind, self.writes, self.lb = kind, writes, lb

    def update(self, session, id, **kw):
        self.writes.append({"kind": self.kind, "id": id, **kw})

    def replace(self, session, id, **kw):
        self.writes.append({"kind": self.kind, "id": id, "replaced": True})

    def get_lb_for_health_update(self, session, amphora_id):
        return self.lb


class _Session:
    def commit(self):
        pass

    def rollback(self):
        pass


def health_processed(hb, lb):
    """
    Runs the health manager's own processing of a received heartbeat
    (UpdateHealthDb._update_health and update_stats) on the load balancer
    as its database would describe it, everything OFFLINE before: returns the
    status and statistics writes it makes.
    """
    writes = []
    db_lb = {
        "id": lb.id, "enabled": True, "provisioning_status": "ACTIVE", "operating_status": "OFFLINE",
        "listeners": {li.id: {"id": li.id, "enabled": True, "operating_status": "OFFLINE", "protocol": li.protocol}
                      for li in lb.listeners},
        "pools": {p.id: {"id": p.id, "operating_status": "OFFLINE",
                         "members": {m.id: {"id": m.id, "operating_status": "OFFLINE"} for m in p.members}}
                  for p in lb.pools},
    }
    updater = heartbeat_udp.UpdateHealthDb()
    updater.amphora_repo = _Recorder("amphora", writes, db_lb)
    updater.amphora_health_repo = _Recorder("amphora_health", writes)
    for kind in ("listener", "loadbalancer", "member", "pool"):
        setattr(updater, kind + "_repo", _Recorder(kind, writes))
    heartbeat_udp.db_api.get_session = lambda *a, **k: _Session()
    stats = []
    heartbeat_udp.stats_base.update_stats_via_driver = lambda listener_stats, deltas=False: stats.extend(
        {"listener": s.listener_id, "deltas": deltas, **s.get_stats()} for s in listener_stats)
    health = dict(hb, recv_time=time.time())
    # The interval the agent was told (1 s) is the health manager's bound for
    # "processed too slowly"; this machine may be busy, so allow 10 s.
    CONF.set_override("heartbeat_interval", 10, "health_manager")
    updater._update_health(health, health["from"])
    heartbeat_udp.update_stats(health)
    return {"writes": writes, "stats": stats}


def served_serial(spec, key):
    """The serial of the certificate the agent presents on a new connection."""
    a = spec["amphorae"][key]
    ctx = ssl.create_default_context(cafile=CONF.haproxy_amphora.server_ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(CONF.haproxy_amphora.client_cert)
    with socket.create_connection((a["lb_network_ip"], spec["bind_port"]), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=a["id"]) as t:
            der = t.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


# ---- phases ------------------------------------------------------------------

def phase_single(spec):
    s = spec["single"]
    amp = amphora(spec, "s", s["lb_id"], s["vip"], "STANDALONE", None)
    lb = load_balancer(s["lb_id"], s["vip"], "SINGLE", [amp])
    vip_sn, mem_sn = subnet(spec, "vip_subnet"), subnet(spec, "member_subnet")
    net_cfg = network_config(spec, {"s": amp}, vip_sn)
    d = driver_for(spec, "s")
    base = d.clients["base"]
    a = spec["amphorae"]["s"]
    refs = load_spec(os.path.join(spec["work"], "refs.json"))
    m1, m2, m3 = spec["members"]

    call(spec, "version discovery (GET //)", "s", lambda: base.get_api_version(amp))
    call(spec, "API version used", "s", lambda: d._populate_amphora_api_version(amp) and amp.api_version)
    call(spec, "get_info", "s", lambda: d.get_info(amp))
    call(spec, "get_details", "s", lambda: d.clients[amp.api_version].get_details(amp))
    call(spec, "get_interface_from_ip before any plug", "s", lambda: d.get_interface_from_ip(amp, s["vip"]))
    call(spec, "post_vip_plug", "s", lambda: d.post_vip_plug(amp, lb, net_cfg))
    call(spec, "post_network_plug", "s", lambda: d.post_network_plug(amp, port("member-port-s", a["member_mac"], a["member_ip"], mem_sn), net_cfg[amp.id]))
    call(spec, "get_interface_from_ip (VIP)", "s", lambda: d.get_interface_from_ip(amp, s["vip"]))

    p_http = pool(lb, "HTTP", [m1, m2], monitor=True)
    p_tcp = pool(lb, "TCP", [m1])
    p_tls = pool(lb, "HTTP", [m2])
    listener(lb, "HTTP", 80, p_http, 1025)
    l_tcp = listener(lb, "TCP", 81, p_tcp, 1025)
    l_tls = listener(lb, "TERMINATED_HTTPS", 443, p_tls, 1025, tls_certificate_id=refs["default"],
                     client_ca_tls_certificate_id=refs["client_ca"], client_crl_container_id=refs["crl"])
    l_tls.client_authentication = "MANDATORY"
    l_tls.sni_containers = [dm.SNI(listener_id=l_tls.id, position=0, tls_container_id=refs["sni"], listener=l_tls)]
    call(spec, "update_amphora_listeners (HTTP, TCP, TERMINATED_HTTPS + SNI + client CA + CRL)", "s",
         lambda: d.update_amphora_listeners(lb, amp))
    call(spec, "start", "s", lambda: d.start(lb, amp))
    call(spec, "get_all_listeners", "s", lambda: d.clients[amp.api_version].get_all_listeners(amp))
    call(spec, "get_details (plugged, serving)", "s", lambda: d.clients[amp.api_version].get_details(amp))
    checkpoint("single-serving", vip=s["vip"], listeners={li.protocol: li.id for li in lb.listeners},
               config=os.path.join(a["base_path"], "lb", lb.id, "haproxy.cfg"),
               user_group=os.path.join(a["base_path"], "haproxy-user-group.cfg"))

    call(spec, "reload", "s", lambda: d.reload(lb, amp))
    checkpoint("single-reloaded", vip=s["vip"], state_file=os.path.join(a["base_path"], lb.id, "servers-state"))

    p_http.members.append(member(p_http, m3))
    call(spec, "member add (update_amphora_listeners)", "s", lambda: d.update_amphora_listeners(lb, amp))
    checkpoint("single-member-added", vip=s["vip"], member=m3["name"])

    call(spec, "listener delete (TERMINATED_HTTPS)", "s", lambda: d.delete(l_tls))
    call(spec, "get_all_listeners after delete", "s", lambda: d.clients[amp.api_version].get_all_listeners(amp))
    checkpoint("single-listener-deleted", vip=s["vip"])

    p_udp = pool(lb, "UDP", [])
    p_udp.members = [member(p_udp, m1, protocol_port=5353)]
    l_udp = listener(lb, "UDP", 5353, p_udp, 1025)
    # This kernel has no IPVS: the agent stores the LVS config and refuses
    # to run it with a clear 409 (the driver raises Conflict).
    call(spec, "UDP listener (update_amphora_listeners: LVS config upload + reload)", "s",
         lambda: d.update_amphora_listeners(lb, amp), refused="Conflict")
    call(spec, "UDP listener delete", "s", lambda: d.delete(l_udp))
    # What the controller's database delete does next.
    lb.listeners.remove(l_udp)
    lb.pools.remove(p_udp)

    # Agent config update: heartbeats move to another health manager port
    # and interval without an agent restart.
    CONF.set_override("controller_ip_port_list", [spec["hm_update"]], "health_manager")
    CONF.set_override("agent_server_cert", os.path.join(a["dir"], "server.pem"), "amphora_agent")
    CONF.set_override("bind_host", a["lb_network_ip"], "haproxy_amphora")
    agent_conf = agent_jinja_cfg.AgentJinjaTemplater().build_agent_config(amp.id, "SINGLE")
    call(spec, "update_amphora_agent_config", "s", lambda: d.update_amphora_agent_config(amp, agent_conf))
    host, port_ = spec["hm_update"].rsplit(":", 1)
    CONF.set_override("bind_ip", host, "health_manager")
    CONF.set_override("bind_port", int(port_), "health_manager")
    hb = call(spec, "heartbeat decoded by the health manager (UDPStatusGetter)", "s", lambda: heartbeat_of(amp.id))
    call(spec, "heartbeat processed by the health manager (UpdateHealthDb, update_stats)", "s", lambda: health_processed(hb, lb))

    # Agent certificate rotation, signed by Octavia's certificate generator.
    new = local_generator.LocalCertGenerator.generate_cert_key_pair(cn=amp.id, validity=2 * 24 * 3600)
    new_serial = x509.load_pem_x509_certificate(new.certificate).serial_number

    def rotate():
        before = served_serial(spec, "s")
        d.upload_cert_amp(amp, new.certificate + new.private_key)
        end = time.monotonic() + 5
        while served_serial(spec, "s") != new_serial:
            if time.monotonic() > end:
                raise AssertionError("the agent still serves serial %x, not the rotated %x" % (served_serial(spec, "s"), new_serial))
            time.sleep(0.1)
        return {"serial_before": "%x" % before, "serial_after": "%x" % new_serial}
    call(spec, "upload_cert_amp (agent certificate rotation)", "s", rotate)
    call(spec, "get_info over the rotated certificate", "s", lambda: d.get_info(amp))

    for li in list(lb.listeners):
        call(spec, "listener delete (%s)" % li.protocol, "s", lambda li=li: d.delete(li))
    call(spec, "get_all_listeners at the end", "s", lambda: d.clients[amp.api_version].get_all_listeners(amp))
    checkpoint("single-done", vip=s["vip"], left=[os.path.join(a["base_path"], lb.id), os.path.join(a["base_path"], lb.id + ".sock"),
                                                  os.path.join(a["cert_dir"], lb.id), os.path.join(a["base_path"], "lb", lb.id)])


def phase_active_standby(spec):
    s = spec["active_standby"]
    amps = {"a": amphora(spec, "a", s["lb_id"], s["vip"], "MASTER", 100),
            "b": amphora(spec, "b", s["lb_id"], s["vip"], "BACKUP", 90)}
    lb = load_balancer(s["lb_id"], s["vip"], "ACTIVE_STANDBY", amps.values())
    vip_sn, mem_sn = subnet(spec, "vip_subnet"), subnet(spec, "member_subnet")
    net_cfg = network_config(spec, amps, vip_sn)
    drivers = {k: driver_for(spec, k) for k in amps}
    m1, m2, _ = spec["members"]
    p = pool(lb, "HTTP", [m1, m2])
    # SOURCE_IP persistence: a stick table shared through the peers section.
    p.session_persistence = dm.SessionPersistence(pool_id=p.id, type="SOURCE_IP", pool=p)
    listener(lb, "HTTP", 80, p, s["peer_port"])

    for k, amp in amps.items():
        d = drivers[k]
        a = spec["amphorae"][k]
        call(spec, "version discovery (GET //)", k, lambda: d.clients["base"].get_api_version(amp))
        call(spec, "API version used", k, lambda: d._populate_amphora_api_version(amp) and amp.api_version)
        call(spec, "post_vip_plug", k, lambda: d.post_vip_plug(amp, lb, net_cfg))
        call(spec, "post_network_plug", k, lambda: d.post_network_plug(amp, port("member-port-" + k, a["member_mac"], a["member_ip"], mem_sn), net_cfg[amp.id]))

        def vrrp_interface(d=d, amp=amp):
            amp.vrrp_interface = d.get_interface_from_ip(amp, amp.vrrp_ip)
            if not amp.vrrp_interface:
                raise AssertionError("no interface for the VRRP address %s" % amp.vrrp_ip)
            return amp.vrrp_interface
        call(spec, "get_interface_from_ip (VRRP address -> vrrp_interface)", k, vrrp_interface)
    for k, amp in amps.items():
        call(spec, "update_vrrp_conf", k, lambda: drivers[k].update_vrrp_conf(lb, net_cfg, amp))
        call(spec, "update_amphora_listeners (HTTP, peers section)", k, lambda: drivers[k].update_amphora_listeners(lb, amp))
    for k, amp in amps.items():
        call(spec, "start_vrrp_service", k, lambda: drivers[k].start_vrrp_service(amp))
        call(spec, "start", k, lambda: drivers[k].start(lb, amp))
    for k, amp in amps.items():
        call(spec, "get_all_listeners", k, lambda: drivers[k].clients[amp.api_version].get_all_listeners(amp))
    checkpoint("as-serving", vip=s["vip"], peer_port=s["peer_port"])

    # The mixin's calls go to every amphora of the load balancer.
    call(spec, "reload_vrrp_service (both)", "a+b", lambda: drivers["a"].reload_vrrp_service(lb))
    for k, amp in amps.items():
        call(spec, "reload", k, lambda: drivers[k].reload(lb, amp))
    checkpoint("as-reloaded", vip=s["vip"], peer_port=s["peer_port"])
    call(spec, "stop_vrrp_service (both)", "a+b", lambda: drivers["a"].stop_vrrp_service(lb))
    checkpoint("as-vrrp-stopped", vip=s["vip"])
    # The last listener: the driver deletes the load balancer's config on every amphora.
    call(spec, "listener delete (last one: the load balancer goes)", "a+b", lambda: drivers["a"].delete(lb.listeners[0]))
    for k, amp in amps.items():
        call(spec, "get_all_listeners at the end", k, lambda: drivers[k].clients[amp.api_version].get_all_listeners(amp))


def main():
    cmd, spec_path = sys.argv[1], sys.argv[2]
    spec = load_spec(spec_path)
    init_conf()
    configure(spec)
    if cmd == "setup":
        setup(spec)
    elif cmd == "run":
        {"single": phase_single, "active-standby": phase_active_standby}[sys.argv[3]](spec)
    emit({"done": True})


if __name__ == "__main__":
    main()
