#!/usr/bin/python3
# Renders configurations with Octavia 11's own Jinja templaters (Debian
# python3-octavia), from data-model objects built here as the controller
# would load them from its database: haproxy (combined listeners: HTTP, TCP,
# TERMINATED_HTTPS with SNI, client CA and CRL, pools with HTTP, TCP and PING
# health monitors, pool TLS with client cert, CA and CRL, L7 policies,
# ACTIVE_STANDBY peers), keepalived VRRP and LVS (UDP with a UDP-CONNECT
# monitor, SCTP). Used by the config-policy test to prove the policy accepts
# what real controllers render.
#
#   octavia-render.py STATE_DIR CERT_DIR  ->  JSON {name: config text} on stdout
import json
import sys
import uuid

from oslo_config import cfg

from octavia.common import config as _octavia_config  # noqa: F401 (registers the options)
from octavia.common import data_models as dm
from octavia.common.jinja.haproxy.combined_listeners import jinja_cfg as haproxy_cfg
from octavia.common.jinja.lvs import jinja_cfg as lvs_cfg
from octavia.amphorae.drivers.keepalived.jinja import jinja_cfg as vrrp_cfg
from octavia.network import data_models as nm

CONF = cfg.CONF
P = "e3cd678b11784734bc366148aa37580e"


def uid():
    return str(uuid.uuid4())


def main():
    state_dir, cert_dir = sys.argv[1], sys.argv[2]
    CONF([], project="octavia", default_config_files=[])
    CONF.set_override("base_path", state_dir, group="haproxy_amphora")
    CONF.set_override("base_cert_dir", cert_dir, group="haproxy_amphora")
    out = {}
    for topology in ("SINGLE", "ACTIVE_STANDBY"):
        lb_id = uid()
        lb = dm.LoadBalancer(
            id=lb_id, project_id=P, name="lb", enabled=True, topology=topology, provisioning_status="ACTIVE",
            operating_status="ONLINE", listeners=[], amphorae=[], pools=[], additional_vips=[],
            vip=dm.Vip(load_balancer_id=lb_id, ip_address="203.0.113.10", subnet_id="s", network_id="n", port_id="p"),
            vrrp_group=dm.VRRPGroup(load_balancer_id=lb_id, vrrp_group_name=lb_id.replace("-", ""), vrrp_auth_type="PASS",
                                    vrrp_auth_pass=lb_id.replace("-", "")[:8], advert_int=1))
        amps = []
        for i, role in enumerate(["MASTER", "BACKUP"] if topology == "ACTIVE_STANDBY" else ["STANDALONE"]):
            a = dm.Amphora(id=uid(), load_balancer_id=lb_id, compute_id=uid(), status="ALLOCATED", lb_network_ip="192.0.2.%d" % (5 + i),
                           vrrp_ip="198.51.100.%d" % (5 + i), ha_ip="203.0.113.10", vrrp_port_id="vp%d" % i, ha_port_id="p",
                           role=role, vrrp_id=1, vrrp_priority=100 - i, load_balancer=lb, vrrp_interface="eth1")
            amps.append(a)
        lb.amphorae = amps

        def pool(protocol, monitor=None, tls=False):
            p = dm.Pool(id=uid(), project_id=P, protocol=protocol, lb_algorithm="ROUND_ROBIN", enabled=True, operating_status="ONLINE",
                        members=[], load_balancer_id=lb_id, load_balancer=lb, listeners=[], l7policies=[], provisioning_status="ACTIVE",
                        tls_enabled=tls, tls_certificate_id=uid() if tls else None, ca_tls_certificate_id=uid() if tls else None,
                        crl_container_id=uid() if tls else None,
                        session_persistence=dm.SessionPersistence(type="APP_COOKIE", cookie_name="c", pool_id=None) if protocol == "HTTP" else None)
            p.members = [dm.Member(id=uid(), project_id=P, pool_id=p.id, ip_address="198.51.100.%d" % (20 + k), protocol_port=8080,
                                   weight=1, backup=False, enabled=True, subnet_id="s", operating_status="ONLINE",
                                   provisioning_status="ACTIVE", pool=p, name="m%d" % k,
                                   monitor_address="198.51.100.9" if k else None, monitor_port=9000 if k else None) for k in range(2)]
            if monitor:
                p.health_monitor = dm.HealthMonitor(id=uid(), project_id=P, pool_id=p.id, type=monitor, delay=2, timeout=1, fall_threshold=3,
                                                    rise_threshold=2, http_method="GET", url_path="/health", expected_codes="200",
                                                    enabled=True, pool=p, provisioning_status="ACTIVE", operating_status="ONLINE",
                                                    domain_name="example.org" if monitor == "HTTP" else None, http_version=1.1 if monitor == "HTTP" else None)
            lb.pools.append(p)
            return p

        def listener(protocol, port, p, **kw):
            kw.setdefault("sni_containers", [])
            li = dm.Listener(id=uid(), project_id=P, name=protocol.lower(), load_balancer_id=lb_id, load_balancer=lb, protocol=protocol,
                             protocol_port=port, connection_limit=1000, enabled=True, provisioning_status="ACTIVE", operating_status="ONLINE",
                             default_pool=p, default_pool_id=p.id, pools=[p], peer_port=1025, l7policies=[],
                             insert_headers={"X-Forwarded-For": "true", "X-SSL-Client-Verify": "true", "X-SSL-Client-DN": "true"},
                             tags=[], allowed_cidrs=[dm.ListenerCidr(cidr="192.0.2.0/24")], **kw)
            p.listeners.append(li)
            lb.listeners.append(li)
            return li

        http = listener("HTTP", 80, pool("HTTP", "HTTP"), client_authentication="NONE")
        rp = pool("HTTP", "TCP")
        http.pools.append(rp)
        rule = dm.L7Rule(id=uid(), type="PATH", compare_type="STARTS_WITH", value="/api", invert=False, enabled=True, provisioning_status="ACTIVE")
        pol = dm.L7Policy(id=uid(), action="REDIRECT_TO_POOL", redirect_pool=rp, redirect_pool_id=rp.id, position=1, enabled=True,
                          l7rules=[rule], provisioning_status="ACTIVE", listener=http)
        rule.l7policy = pol
        http.l7policies = [pol]
        listener("TCP", 8443, pool("TCP", "PING"), client_authentication="NONE")
        https = listener("TERMINATED_HTTPS", 443, pool("HTTP", "HTTPS", tls=True), client_authentication="OPTIONAL",
                         tls_certificate_id=uid(), client_ca_tls_certificate_id=uid(), client_crl_container_id=uid(),
                         sni_containers=[dm.SNI(listener_id=None, tls_container_id=uid(), position=0)])
        tls_certs = {https.client_ca_tls_certificate_id: "a" * 40 + ".pem", https.client_crl_container_id: "b" * 40 + ".pem"}
        for p in lb.pools:
            if p.tls_enabled:
                tls_certs[p.id] = {"client_cert": "%s/%s/%s.pem" % (cert_dir, lb_id, p.tls_certificate_id),
                                   "ca_cert": "%s/%s/%s.pem" % (cert_dir, lb_id, "c" * 40),
                                   "crl": "%s/%s/%s.pem" % (cert_dir, lb_id, "d" * 40)}
        t = haproxy_cfg.JinjaTemplater(base_amp_path=state_dir, base_crt_dir=cert_dir, connection_logging=True)
        out["haproxy %s" % topology] = {"lbId": lb_id, "text": t.build_config(amps[0], lb.listeners, tls_certs, ["2", "6", "12"])}
        if topology == "ACTIVE_STANDBY":
            net = nm.AmphoraNetworkConfig(amphora=amps[0], vip_subnet=nm.Subnet(id="s", cidr="203.0.113.0/24", gateway_ip="203.0.113.1", host_routes=[], ip_version=4),
                                          vrrp_port=nm.Port(id="vp0", fixed_ips=[nm.FixedIP(ip_address="198.51.100.5")]),
                                          additional_vip_data=[])
            k = vrrp_cfg.KeepalivedJinjaTemplater()
            out["keepalived"] = {"text": k.build_keepalived_config(lb, amps[0], net)}
        # UDP / SCTP listeners (LVS), one config each.
        for proto, mon in (("UDP", "UDP-CONNECT"), ("SCTP", "SCTP"), ("UDP", None)):
            p = pool(proto, mon)
            li = listener(proto, 53, p, client_authentication="NONE")
            out["lvs %s %s %s" % (topology, proto, mon)] = {"listenerId": li.id, "text": lvs_cfg.LvsJinjaTemplater(base_amp_path=state_dir).build_config(li)}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
