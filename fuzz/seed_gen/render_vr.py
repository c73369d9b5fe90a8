#!/usr/bin/env python3
"""Writes the seeds of the render_vr fuzz target: sequences of VR commands
(records "path\\nbody" separated by NUL) that build a router with every
kind of entry, from the shapes of vr-agent/tests/bad_bodies/gen.py.
  python3 fuzz/seed_gen/render_vr.py fuzz/seeds/render_vr
"""
import copy
import json
import os
import sys

MGMT, PUB, PRIV = "fa:26:9c:aa:00:01", "fa:26:9c:aa:00:02", "fa:26:9c:aa:00:03"


def nic(mac, ip, gw, cat, default=False):
    return {"ip": ip, "mac": mac, "gateway": gw, "netmask": "255.255.255.0",
            "isDefaultRoute": default, "category": cat, "firewallDefaultAction": "reject", "mtu": 1500}


NICS = {"nics": [nic(MGMT, "10.0.0.50", "10.0.0.1", "Management"),
                 nic(PUB, "172.20.10.5", "172.20.10.1", "Public", True),
                 nic(PRIV, "192.168.100.1", "192.168.100.1", "Private")]}
VIPS = {"vips": [{"ip": f"172.20.10.{i}", "netmask": "255.255.255.0", "gateway": "172.20.10.1",
                  "ownerEthernetMac": PUB, "vipUuid": f"{i:032x}", "isSystem": False} for i in (100, 101, 102)]}


def pf(uuid, vip, proto, vs, ve, ps, pe, allowed=None, inbound=False):
    r = {"uuid": uuid, "vipPortStart": vs, "vipPortEnd": ve, "privatePortStart": ps, "privatePortEnd": pe,
         "protocolType": proto, "vipIp": vip, "publicMac": PUB, "privateIp": "192.168.100.10",
         "privateMac": PRIV, "snatInboundTraffic": inbound}
    if allowed:
        r["allowedCidr"] = allowed
    return r


PFS = {"rules": [pf("a" * 32, "172.20.10.100", "TCP", 8080, 8080, 80, 80, "203.0.113.0/24"),
                 pf("b" * 32, "172.20.10.100", "UDP", 27, 29, 27, 29, inbound=True),
                 pf("c" * 32, "172.20.10.101", "UDP", 27, 27, 27, 27, inbound=True),
                 pf("d" * 32, "172.20.10.100", "TCP", 9000, 9010, 7000, 7010)]}
EIP = {"eip": {"vipIp": "172.20.10.102", "privateMac": PRIV, "publicMac": PUB,
               "guestIp": "192.168.100.20", "snatInboundTraffic": True}}
SNAT = {"snats": [{"publicNicMac": PUB, "publicIp": "172.20.10.5", "privateNicMac": PRIV,
                   "privateNicIp": "192.168.100.1", "privateGatewayIp": "192.168.100.1",
                   "snatNetmask": "255.255.255.0", "state": True}], "enable": True}
DHCP = {"dhcpServers": [{"nicMac": PRIV, "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
                         "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1",
                         "mtu": 1500, "dhcpInfos": [{"ip": "192.168.100.30", "mac": "fa:a1:5e:12:34:60",
                                                     "hostname": "web-30", "isDefaultL3Network": True}]}]}
ADD = {"dhcpEntries": [{"ip": "192.168.100.31", "mac": "fa:a1:5e:12:34:61", "netmask": "255.255.255.0",
                        "gateway": "192.168.100.1", "dns": ["192.168.100.1"], "hostname": "web-31",
                        "vrNicMac": PRIV, "dnsDomain": "zstack.local", "isDefaultL3Network": True,
                        "mtu": 1500}], "rebuild": False}
DNS = {"dns": [{"dnsAddress": "10.0.0.1", "nicMac": PUB}], "nicMac": [PRIV]}


def lb(uuid, port, mode, **extra):
    return {"lbUuid": "f" * 32, "listenerUuid": uuid, "vip": "172.20.10.101", "publicNic": PUB,
            "nicIps": ["192.168.100.10"], "instancePort": 80, "loadBalancerPort": port, "mode": mode,
            "parameters": ["balancerAlgorithm::roundrobin", "healthCheckTarget::tcp:default",
                           "healthCheckInterval::5", "healthyThreshold::2", "unhealthyThreshold::2",
                           "healthCheckTimeout::2", "maxConnection::2000"],
            "serverGroups": [{"name": "sg", "serverGroupUuid": "9" * 32,
                              "backendServers": [{"ip": "192.168.100.10", "weight": 100}],
                              "isDefault": False}], "redirectRules": [], **extra}


LBS = {"lbs": [lb("1" * 32, 80, "http"), lb("2" * 32, 443, "tcp"), lb("3" * 32, 53, "udp")],
       "enableHaproxyLog": True}


def rec(path, body):
    return path.encode() + b"\n" + json.dumps(body).encode()


SEEDS = {
    "nat": [("/configurenic", NICS), ("/createvip", VIPS), ("/createportforwarding", PFS),
            ("/createeip", EIP), ("/syncsnat", SNAT), ("/revokeportforwarding", {"rules": PFS["rules"][:1]})],
    "dhcp": [("/configurenic", NICS), ("/refreshDhcpServer", DHCP), ("/adddhcp", ADD), ("/setdns", DNS)],
    "lb": [("/configurenic", NICS), ("/createvip", VIPS), ("/lb/refresh", LBS)],
    "all": [("/configurenic", NICS), ("/createvip", VIPS), ("/createportforwarding", PFS),
            ("/createeip", EIP), ("/syncsnat", SNAT), ("/refreshDhcpServer", DHCP), ("/adddhcp", ADD),
            ("/setdns", DNS), ("/lb/refresh", LBS), ("/removeeip", EIP)],
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, recs in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b"\0".join(rec(p, b) for p, b in recs))
