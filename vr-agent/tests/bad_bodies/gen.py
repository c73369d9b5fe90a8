#!/usr/bin/env python3
"""Writes corpus.jsonl: bodies the vr-agent must refuse (issue 13).

Each line: {"name", "path", "body", "expect"}; `expect` is a word the
error must contain (the field or entry at fault). The bodies start from
valid ones (the protocol reference's fixtures, as Gson writes them) and
break one thing each: a mandatory list missing, a wrong JSON type, a
hostile or oversized string, a bad address, MAC, CIDR or port, a
duplicate. Run it again after changing it and check the output in:
  python3 vr-agent/tests/bad_bodies/gen.py > vr-agent/tests/bad_bodies/corpus.jsonl
"""
import copy
import json
import sys

PUB, PRIV, MGMT = "fa:26:9c:aa:00:02", "fa:26:9c:aa:00:03", "fa:26:9c:aa:00:01"
U = "0e5c7a1f2b3d4e6f8091a2b3c4d5e6f7"

NIC = {"ip": "192.168.100.1", "mac": PRIV, "gateway": "192.168.100.1",
       "netmask": "255.255.255.0", "isDefaultRoute": False, "category": "Private",
       "firewallDefaultAction": "reject", "mtu": 1500}
SNAT = {"publicNicMac": PUB, "publicIp": "172.20.10.5", "privateNicMac": PRIV,
        "privateNicIp": "192.168.100.1", "privateGatewayIp": "192.168.100.1",
        "snatNetmask": "255.255.255.0", "state": True}
VIP = {"ip": "172.20.10.110", "netmask": "255.255.0.0", "gateway": "172.20.0.1",
       "prefixLength": 0, "ownerEthernetMac": PUB, "vipUuid": "a3c9e0b1d2f34a5b8c7d6e5f4a3b2c1d",
       "isSystem": False}
PF = {"uuid": U, "vipPortStart": 9090, "vipPortEnd": 9090, "privatePortStart": 80,
      "privatePortEnd": 80, "protocolType": "TCP", "vipIp": "172.20.10.100",
      "publicMac": PUB, "privateIp": "192.168.100.10", "privateMac": PRIV,
      "allowedCidr": "203.0.113.0/24", "snatInboundTraffic": False}
EIP = {"vipIp": "172.20.10.111", "privateMac": PRIV, "publicMac": PUB,
       "guestIp": "192.168.100.20", "snatInboundTraffic": False, "needCleanGuestIp": False}
DHCP = {"ip": "192.168.100.30", "mac": "fa:a1:5e:12:34:60", "netmask": "255.255.255.0",
        "gateway": "192.168.100.1", "dns": ["192.168.100.1"], "hostname": "web-30",
        "vrNicMac": PRIV, "dnsDomain": "zstack.local", "isDefaultL3Network": True, "mtu": 1500}
SERVER = {"nicMac": PRIV, "subnet": "192.168.100.0/24", "netmask": "255.255.255.0",
          "gateway": "192.168.100.1", "dnsDomain": "zstack.local", "dnsServer": "192.168.100.1",
          "mtu": 1500, "dhcpInfos": [{k: v for k, v in DHCP.items() if k in ("ip", "mac", "hostname", "isDefaultL3Network")}]}
LB = {"lbUuid": "f2c7b2ff2f834e1ea20363f49122a3b4", "listenerUuid": "23fb656e4f324e74a4889582104fcbf0",
      "vip": "172.20.10.102", "publicNic": PUB, "nicIps": ["192.168.100.10"], "instancePort": 80,
      "loadBalancerPort": 80, "mode": "http", "enableFullLog": False,
      "parameters": ["balancerAlgorithm::roundrobin", "healthCheckTarget::tcp:default",
                     "healthCheckInterval::5", "healthyThreshold::2", "unhealthyThreshold::2",
                     "healthCheckTimeout::2", "maxConnection::2000"],
      "serverGroups": [{"name": "sg-web", "serverGroupUuid": "9b8a7c6d5e4f40312a1b0c9d8e7f6a5b",
                        "backendServers": [{"ip": "192.168.100.10", "weight": 100}], "isDefault": False}],
      "redirectRules": []}
PEM = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n"

# Expanded by the test (keeps the checked-in file small): 1 MiB of "a".
MB = "{{1MiB}}"
HOSTILE = {"newline": "x\nforged: line", "comma": "a,b", "hash": "a#b", "ctrl": "a\u0001b",
           "space": "a b", "1MB": MB, "empty": ""}
BAD_IP = {"not-ip": "172.20.10.300", "short": "1.2.3", "zero": "0.0.0.0",
          "bcast": "255.255.255.255", "loop": "127.0.0.1", "mcast": "224.0.0.5",
          "linklocal": "169.254.1.1", "ipv6": "2001:db8::1", "newline": "172.20.10.9\n1.1.1.1",
          "1MB": MB, "number": 5}
BAD_MAC = {"short": "fa:26:9c:aa:00", "hex": "zz:26:9c:aa:00:02", "empty": "",
           "newline": "fa:26:9c:aa:00:02\n", "1MB": MB, "number": 7}
BAD_MASK = {"holes": "255.0.255.0", "text": "abc", "1MB": MB, "number": 24}
BAD_PORT = {"zero": 0, "big": 70000, "neg": -1, "string": "80", "float": 80.5}
BAD_UUID = {"1MB": MB, "newline": U + "\n", "long": "f" * 37, "comma": "a,b", "ctrl": "u\u0007"}
BAD_CIDR = {"text": "abc", "bits": "10.0.0.0/33", "newline": "10.0.0.0/8\n", "1MB": MB}

out = []


def add(name, path, body, expect):
    out.append({"name": name, "path": path, "body": body, "expect": expect})


def entry_cases(path, key, base, fields, wrap=lambda e: [e], single=False, extra=None):
    """Break one field of one entry of `key` at a time."""
    for field, bads in fields.items():
        for tag, v in bads.items():
            e = copy.deepcopy(base)
            e[field] = v
            body = {**(extra or {}), key: e if single else wrap(e)}
            add(f"{path} {key}.{field} {tag}", path, body, field)


def shape_cases(path, key, base_entry, mandatory=True, extra=None, single=False):
    extra = extra or {}
    if mandatory:
        add(f"{path} missing {key}", path, dict(extra), key)
    for tag, v in {"string": "x", "number": 1, "object": {}, "bool": True}.items():
        if single and tag == "object":
            continue
        add(f"{path} {key} is {tag}", path, {**extra, key: v}, key)
    if not single:
        add(f"{path} {key} entry is string", path, {**extra, key: ["x"]}, key)
        add(f"{path} {key} entry is list", path, {**extra, key: [[base_entry]]}, key)


# ---- NICs
nic_fields = {"ip": {k: v for k, v in BAD_IP.items() if k != "ipv6"}, "mac": BAD_MAC,
              "netmask": BAD_MASK, "category": {"odd": "Odd", "newline": "Public\n"},
              "firewallDefaultAction": {"odd": "maybe", "1MB": MB},
              "mtu": {"small": 10, "big": 70000, "string": "1500"},
              "gateway": {"bcast": "255.255.255.255", "mcast": "224.0.0.1", "text": "gw"}}
entry_cases("/configurenic", "nics", NIC, nic_fields)
entry_cases("/configurenic", "nics", {**NIC, "ip6": "2001:db8:30::1", "prefixLength": 64},
            {"ip6": {"zero": "::", "loop": "::1", "mcast": "ff02::1", "text": "2001:db8::zz"},
             "prefixLength": {"zero": 0, "big": 129}, "gateway6": {"mcast": "ff02::2", "loop": "::1"}})
add("/configurenic network address", "/configurenic", {"nics": [{**NIC, "ip": "192.168.100.0"}]}, "network address")
add("/configurenic subnet broadcast", "/configurenic", {"nics": [{**NIC, "ip": "192.168.100.255"}]}, "broadcast")
add("/configurenic duplicate mac", "/configurenic", {"nics": [NIC, NIC]}, "mac")
shape_cases("/configurenic", "nics", NIC)
entry_cases("/removenic", "nics", {"mac": PRIV}, {"mac": BAD_MAC})
shape_cases("/removenic", "nics", {"mac": PRIV})
entry_cases("/configurenicdefaultaction", "nics", {"mac": PRIV, "firewallDefaultAction": "accept"},
            {"mac": BAD_MAC, "firewallDefaultAction": {"odd": "maybe", "empty": "", "newline": "accept\n"}})
entry_cases("/changeDefaultNic", "newNic", {"mac": PUB, "ip": "172.20.10.5", "gateway": "172.20.0.1"},
            {"mac": BAD_MAC, "gateway": {"text": "gw", "number": 1}, "gateway6": {"mcast": "ff02::1"}}, single=True)

# ---- SNAT
snat_fields = {"publicIp": BAD_IP, "privateNicIp": BAD_IP, "publicNicMac": BAD_MAC,
               "privateNicMac": BAD_MAC, "snatNetmask": BAD_MASK}
entry_cases("/setsnat", "snat", SNAT, snat_fields, single=True)
entry_cases("/syncsnat", "snats", SNAT, snat_fields)
entry_cases("/removesnat", "natInfo", SNAT, {"publicIp": BAD_IP, "privateNicMac": BAD_MAC})
entry_cases("/setsnatservicestate", "snats", SNAT, {"publicIp": BAD_IP, "snatNetmask": BAD_MASK},
            extra={"enabled": True})
# The node always sends these lists (see the wire types in common/src/vr.rs):
# a body without one is broken, not "nothing" (for setsnatservicestate a
# missing `snats` or `enabled` would switch SNAT off).
shape_cases("/removesnat", "natInfo", SNAT)
shape_cases("/setsnatservicestate", "snats", SNAT, extra={"enabled": False})
add("/setsnatservicestate missing enabled", "/setsnatservicestate", {"snats": [SNAT]}, "enabled")
add("/setsnatservicestate privateGatewayIp 1MB", "/setsnatservicestate",
    {"snats": [{**SNAT, "privateGatewayIp": MB}], "enabled": True}, "privateGatewayIp")
add("/setsnatservicestate enabled is string", "/setsnatservicestate", {"snats": [SNAT], "enabled": "false"}, "enabled")
shape_cases("/syncsnat", "snats", SNAT, extra={"enable": True})
add("/syncsnat duplicate", "/syncsnat", {"snats": [SNAT, SNAT], "enable": True}, "privateNicMac")
add("/setsnat snat is list", "/setsnat", {"snat": [SNAT]}, "snat")
# serde takes a list of a struct's fields in order: `[]` was a struct of
# defaults (every field absent) instead of a wrong type.
for path, key in [("/setsnat", "snat"), ("/createeip", "eip"), ("/removeeip", "eip"),
                  ("/changeDefaultNic", "newNic")]:
    add(f"{path} {key} is empty list", path, {key: []}, key)
add("/lb/refresh serverGroups entry is empty list", "/lb/refresh",
    {"lbs": [{**LB, "serverGroups": [[]]}]}, "serverGroups")
add("/lb/refresh backendServers entry is empty list", "/lb/refresh",
    {"lbs": [{**LB, "serverGroups": [{**LB["serverGroups"][0], "backendServers": [[]]}]}]}, "backendServers")
add("/refreshDhcpServer dhcpInfos entry is empty list", "/refreshDhcpServer",
    {"dhcpServers": [{**SERVER, "dhcpInfos": [[]]}]}, "dhcpInfos")
add("/createvip nicIps entry is empty list", "/createvip", {"vips": [VIP], "nicIps": [[]]}, "nicIps")

# ---- VIPs
vip_fields = {"ip": BAD_IP, "netmask": BAD_MASK, "ownerEthernetMac": BAD_MAC,
              "vipUuid": {"1MB": MB, "newline": "v\n"}}
entry_cases("/createvip", "vips", VIP, vip_fields)
entry_cases("/createvip", "vips", {**VIP, "ip": "", "ip6": "2001:db8:20::110", "prefixLength": 64},
            {"ip6": {"zero": "::", "loop": "::1", "mcast": "ff05::1", "text": "nope"},
             "prefixLength": {"big": 200, "neg": -3}})
add("/createvip subnet broadcast", "/createvip", {"vips": [{**VIP, "ip": "172.20.255.255"}]}, "broadcast")
add("/createvip duplicate ip", "/createvip", {"vips": [VIP, VIP]}, "ip")
shape_cases("/createvip", "vips", VIP)
add("/createvip syncVip bad nicIps", "/createvip",
    {"syncVip": True, "vips": [VIP], "nicIps": [{"ip": "1.2.3", "netmask": "255.255.0.0", "ownerEthernetMac": PUB}]}, "nicIps")
entry_cases("/removevip", "vips", VIP, {"ip": {"text": "vip", "1MB": MB, "number": 3}})
shape_cases("/removevip", "vips", VIP)

# ---- Port forwarding
pf_fields = {"uuid": BAD_UUID, "vipIp": BAD_IP, "privateIp": BAD_IP, "publicMac": BAD_MAC,
             "privateMac": BAD_MAC, "vipPortStart": BAD_PORT, "privatePortEnd": BAD_PORT,
             "protocolType": {"icmp": "ICMP", "newline": "TCP\n", "1MB": MB},
             "allowedCidr": BAD_CIDR}
for path in ("/createportforwarding", "/syncportforwarding"):
    entry_cases(path, "rules", PF, pf_fields)
    shape_cases(path, "rules", PF)
    add(f"{path} duplicate uuid", path, {"rules": [PF, {**PF, "vipPortStart": 9091, "vipPortEnd": 9091}]}, "uuid")
    add(f"{path} reversed ports", path, {"rules": [{**PF, "vipPortStart": 9095, "vipPortEnd": 9090}]}, "vipPort")
add("/revokeportforwarding missing rules", "/revokeportforwarding", {}, "rules")
add("/revokeportforwarding rules is string", "/revokeportforwarding", {"rules": "x"}, "rules")

# ---- EIP
eip_fields = {"vipIp": BAD_IP, "guestIp": BAD_IP, "publicMac": BAD_MAC, "privateMac": BAD_MAC}
entry_cases("/createeip", "eip", EIP, eip_fields, single=True)
entry_cases("/removeeip", "eip", EIP, {"vipIp": BAD_IP}, single=True)
entry_cases("/synceip", "eips", EIP, eip_fields)
shape_cases("/synceip", "eips", EIP)
add("/synceip duplicate vip", "/synceip", {"eips": [EIP, {**EIP, "guestIp": "192.168.100.21"}]}, "vipIp")
add("/synceip duplicate identical", "/synceip", {"eips": [EIP, EIP]}, "vipIp")

# ---- DHCP and DNS
dhcp_fields = {"ip": BAD_IP, "mac": BAD_MAC, "vrNicMac": BAD_MAC, "netmask": BAD_MASK,
               "gateway": {"bcast": "255.255.255.255", "text": "gw"},
               # An empty hostname is "none" (Gson writes "" for an unset one).
               "hostname": {k: v for k, v in HOSTILE.items() if k != "empty"} | {"long": "a" * 64, "dots": "a..b"},
               "dnsDomain": {k: v for k, v in HOSTILE.items() if k != "empty"} | {"long": ("a" * 60 + ".") * 5},
               "mtu": {"small": 1, "string": "1500"}}
entry_cases("/adddhcp", "dhcpEntries", DHCP, dhcp_fields)
add("/adddhcp ip is gateway", "/adddhcp", {"dhcpEntries": [{**DHCP, "ip": "192.168.100.1"}], "rebuild": False}, "ip")
add("/adddhcp ip is subnet broadcast", "/adddhcp", {"dhcpEntries": [{**DHCP, "ip": "192.168.100.255"}], "rebuild": False}, "broadcast")
add("/adddhcp dns loopback", "/adddhcp", {"dhcpEntries": [{**DHCP, "dns": ["127.0.0.1"]}], "rebuild": False}, "dns")
add("/adddhcp duplicate mac", "/adddhcp", {"dhcpEntries": [DHCP, {**DHCP, "ip": "192.168.100.31"}]}, "mac")
add("/adddhcp duplicate ip", "/adddhcp", {"dhcpEntries": [DHCP, {**DHCP, "mac": "fa:a1:5e:12:34:61"}]}, "ip")
shape_cases("/adddhcp", "dhcpEntries", DHCP, extra={"rebuild": True})
entry_cases("/removedhcp", "dhcpEntries", DHCP, {"mac": BAD_MAC, "vrNicMac": BAD_MAC})
srv_fields = {"nicMac": BAD_MAC, "subnet": BAD_CIDR, "gateway": {"bcast": "255.255.255.255", "mcast": "239.1.1.1"},
              "dnsServer": {"loop": "127.0.0.1", "text": "dns"}, "dnsDomain": {"comma": "a,b", "newline": "a\nb"},
              "mtu": {"small": 2}}
for path in ("/refreshDhcpServer", "/startDhcpServer"):
    entry_cases(path, "dhcpServers", SERVER, srv_fields)
    shape_cases(path, "dhcpServers", SERVER)
    info = SERVER["dhcpInfos"][0]
    for field, v, expect in [("ip", "192.168.100.1", "ip"), ("ip", "192.168.101.5", "ip"),
                             ("ip", "192.168.100.255", "broadcast"), ("mac", "zz", "mac"),
                             ("hostname", "a#b", "hostname")]:
        s = copy.deepcopy(SERVER)
        s["dhcpInfos"][0][field] = v
        add(f"{path} dhcpInfos.{field}={v}", path, {"dhcpServers": [s]}, expect)
    s = copy.deepcopy(SERVER)
    s["dhcpInfos"].append({**info, "ip": "192.168.100.31"})
    add(f"{path} duplicate guest mac", path, {"dhcpServers": [s]}, "mac")
    add(f"{path} duplicate server", path, {"dhcpServers": [SERVER, SERVER]}, "nicMac")
add("/stopDhcpServer missing list", "/stopDhcpServer", {}, "dhcpServers")
add("/stopDhcpServer bad mac", "/stopDhcpServer", {"dhcpServers": [{**SERVER, "nicMac": "x"}]}, "nicMac")
dns = {"dnsAddress": "223.5.5.5", "nicMac": PRIV}
for path in ("/setdns", "/removedns"):
    entry_cases(path, "dns", dns, {"dnsAddress": {k: v for k, v in BAD_IP.items() if k in ("not-ip", "short", "newline", "1MB", "number", "ipv6")},
                                    "nicMac": {"hex": "zz:26:9c:aa:00:02", "1MB": MB}})
    shape_cases(path, "dns", dns)
add("/setvpcdns bad dns", "/setvpcdns", {"dns": ["1.2.3"], "nicMac": [PRIV]}, "dns")
add("/setvpcdns bad mac", "/setvpcdns", {"dns": ["8.8.8.8"], "nicMac": ["x"]}, "nicMac")
add("/setvpcdns dns is string", "/setvpcdns", {"dns": "8.8.8.8", "nicMac": [PRIV]}, "dns")
add("/setvpcdns missing dns", "/setvpcdns", {"nicMac": [PRIV]}, "dns")
add("/setvpcdns missing nicMac", "/setvpcdns", {"dns": ["8.8.8.8"]}, "nicMac")
add("/setvpcdns empty body", "/setvpcdns", {}, "dns")
add("/setvpcdns nicMac is string", "/setvpcdns", {"dns": ["8.8.8.8"], "nicMac": PRIV}, "nicMac")

# ---- Load balancer and certificates
lb_fields = {"listenerUuid": BAD_UUID, "lbUuid": BAD_UUID, "vip": BAD_IP,
             "mode": {"odd": "smtp", "newline": "http\n"},
             "loadBalancerPort": BAD_PORT, "instancePort": BAD_PORT,
             "publicNic": {"hex": "zz", "1MB": MB}}
for path in ("/lb/refresh",):
    entry_cases(path, "lbs", LB, lb_fields)
    shape_cases(path, "lbs", LB)
    for p, expect in [("healthCheckInterval::often", "healthCheckInterval"),
                      ("balancerAlgorithm::random", "balancerAlgorithm"),
                      ("noseparator", "parameters"), ("maxConnection::-5", "maxConnection"),
                      ("x" * 5000, "parameters"), ("healthCheckTarget::tcp:default\nbind *:22", "parameters")]:
        l = copy.deepcopy(LB)
        l["parameters"].append(p)
        add(f"{path} parameters {p[:30]}", path, {"lbs": [l]}, expect)
    l = copy.deepcopy(LB)
    l["serverGroups"][0]["backendServers"][0]["ip"] = "1.2.3"
    add(f"{path} backend ip", path, {"lbs": [l]}, "ip")
    l = copy.deepcopy(LB)
    l["serverGroups"][0]["name"] = "a\nb"
    add(f"{path} server group name newline", path, {"lbs": [l]}, "name")
add("/lb/delete missing lbs", "/lb/delete", {}, "lbs")
add("/lb/delete lbs is object", "/lb/delete", {"lbs": {}}, "lbs")
add("/lb/delete bad uuid", "/lb/delete", {"lbs": [{**LB, "listenerUuid": "a\nb"}]}, "listenerUuid")
for tag, lv in {"odd": "verbose", "newline": "info\n", "1MB": MB, "number": 3}.items():
    add(f"/lb/log/level {tag}", "/lb/log/level", {"level": lv}, "level")
for tag, (uuid, pem, expect) in {
        "no cert": ("c9", "hello", "certificate"), "no key": ("c9", PEM.split("-----BEGIN PRIVATE")[0], "certificate"),
        "bad uuid": ("a b", PEM, "uuid"), "newline uuid": ("c9\n", PEM, "uuid"), "1MB uuid": (MB, PEM, "uuid"),
        "huge pem": ("c9", PEM + "{{70KiB}}", "certificate"), "pem number": ("c9", 5, "certificate")}.items():
    add(f"/certificate/create {tag}", "/certificate/create", {"uuid": uuid, "certificate": pem}, expect)
add("/certificates/create missing certs", "/certificates/create", {}, "certs")
add("/certificates/create certs is list", "/certificates/create", {"certs": [PEM]}, "certs")
add("/certificates/create bad key", "/certificates/create", {"certs": {"a b": PEM}}, "uuid")
add("/certificates/create long key", "/certificates/create", {"certs": {"k" * 40: PEM}}, "certs")
add("/certificates/create bad pem", "/certificates/create", {"certs": {"c9": "nope"}}, "certificate")
for tag, u in {"missing": "", "space": "a b", "newline": "c\n", "1MB": MB}.items():
    add(f"/certificate/delete {tag}", "/certificate/delete", {"uuid": u}, "uuid")

# ---- /init
for tag, (body, expect) in {
        "mgtCidr text": ({"uuid": U, "mgtCidr": "abc"}, "mgtCidr"),
        "mgtCidr bits": ({"uuid": U, "mgtCidr": "10.0.0.0/40"}, "mgtCidr"),
        "logLevel": ({"uuid": U, "logLevel": "loud"}, "logLevel"),
        "port range": ({"uuid": U, "parms": {"ipv4LocalPortRange": "80-20"}}, "ipv4LocalPortRange"),
        "uuid 1MB": ({"uuid": MB}, "uuid"), "uuid newline": ({"uuid": U + "\nforged"}, "uuid"),
        "timeServers string": ({"uuid": U, "timeServers": "x"}, "timeServers"),
        "parms list": ({"uuid": U, "parms": ["a"]}, "parms")}.items():
    add(f"/init {tag}", "/init", body, expect)

for c in out:
    sys.stdout.write(json.dumps(c, ensure_ascii=True) + "\n")
sys.stderr.write(f"{len(out)} bad bodies\n")
