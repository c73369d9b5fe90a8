#!/usr/bin/env python3
"""Writes corpus.jsonl: bodies kvm-agent must refuse (issue 13).

Each line: {"name", "path", "body" | "raw", "expect"}; `body` is sent as
compact JSON, `raw` as its text. `expect` is a word the error must contain
(the field or the problem). Markers, expanded by the test: `$TMP` is the
test's directory (as in the conformance fixtures), `{{1MiB}}` 1 MiB of "a",
`{{xff}}` and `{{xe9}}` those bytes (a body that is not UTF-8).

The bodies start from the node's own (the conformance fixtures under
conformance/kvm, zstackio/zstack 5a29293b KVMAgentCommands.java) and break
one thing each. Run it again after changing it and check the output in:
  python3 kvm-agent/tests/bad_bodies/gen.py > kvm-agent/tests/bad_bodies/corpus.jsonl
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "..", "conformance", "kvm")


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        return json.load(f)["request"]


MB = "{{1MiB}}"
VM = "7c0de1f2a3b44c5d8e9f00112233aabb"      # running (the test's setup)
NEW_VM = "1e2d3c4b5a6978877665544332211aaa"  # what the bad starts would start
UNKNOWN_VM = "0f1e2d3c4b5a69788776655443322110"  # never on this host
ESC = "\u001b[2J"

# The node's bodies, with host paths moved under the test's directory.
START = fixture("vm-start")
START["rootVolume"]["installPath"] = "$TMP/volumes/root.qcow2"
NEW_START = copy.deepcopy(START)
NEW_START["vmInstanceUuid"] = NEW_VM
NEW_START["addons"]["channel"]["socketPath"] = "$TMP/agentSocket/applianceVm." + NEW_VM

BASE = {
    "/host/connect": fixture("host-connect"),
    "/host/ping": fixture("host-ping"),
    "/host/capacity": fixture("host-capacity"),
    "/host/fact": fixture("host-fact"),
    "/host/update/configuration": fixture("host-update-configuration"),
    "/host/updatedependency": fixture("host-updatedependency"),
    "/network/checkphysicalnetworkinterface": fixture("network-checkphysicalnetworkinterface"),
    "/network/l2novlan/createbridge": fixture("network-l2novlan-createbridge"),
    "/network/l2vlan/createbridge": fixture("network-l2vlan-createbridge"),
    "/network/l2novlan/checkbridge": fixture("network-l2novlan-checkbridge"),
    "/network/l2vlan/checkbridge": fixture("network-l2vlan-checkbridge"),
    "/network/l2novlan/deletebridge": fixture("network-l2novlan-deletebridge"),
    "/network/l2vlan/deletebridge": fixture("network-l2vlan-deletebridge"),
    "/network/bridge/addif": {"physicalInterfaceName": "dummy0", "bridgeName": "br_eth0", "kvmHostAddons": {}},
    "/vm/start": NEW_START,
    "/vm/stop": fixture("vm-stop"),
    "/vm/destroy": fixture("vm-destroy"),
    "/vm/reboot": fixture("vm-reboot"),
    "/vm/vmsync": fixture("vm-vmsync"),
    "/vm/console/tail": fixture("vm-console-tail"),
    "/vm/checkstate": fixture("vm-checkstate"),
    "/vm/getvncport": fixture("vm-getvncport"),
    "/vm/volumesync": fixture("vm-volumesync"),
    "/vm/attachnic": fixture("vm-attachnic"),
    "/vm/detachnic": fixture("vm-detachnic"),
    "/vm/getvirtualizerinfo": fixture("vm-getvirtualizerinfo"),
    "/appliancevm/setbootstrapinfo": fixture("appliancevm-setbootstrapinfo"),
}

out = []


def add(name, path, expect, body=None, raw=None):
    c = {"name": name, "path": path}
    if raw is not None:
        c["raw"] = raw
    else:
        c["body"] = body
    c["expect"] = expect
    out.append(c)


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


# ---- Every path: the body itself is not one JSON object.
for path, base in BASE.items():
    text = compact(base)
    first = next(iter(base))
    add(f"{path} not UTF-8", path, "UTF-8", raw='{"x{{xff}}":1,' + text[1:])
    add(f"{path} latin-1 value", path, "UTF-8", raw=text[:-1] + ',"note":"caf{{xe9}}"}')
    add(f"{path} empty body", path, "empty", raw="")
    add(f"{path} []", path, "array", raw="[]")
    add(f"{path} [body]", path, "array", raw="[" + text + "]")
    add(f"{path} null", path, "null", raw="null")
    add(f"{path} string", path, "string", raw='"x"')
    add(f"{path} number", path, "number", raw="7")
    add(f"{path} duplicate key", path, "duplicate key",
        raw=text[:-1] + "," + compact({first: base[first]})[1:])
    add(f"{path} truncated", path, "JSON", raw=text[:-1])
    add(f"{path} trailing garbage", path, "JSON", raw=text + "x")


def with_field(path, field, value, base=None):
    """`base` (the path's fixture) with `field` (dotted) set, or removed
    when `value` is DELETE."""
    b = copy.deepcopy(base if base is not None else BASE[path])
    *parents, last = field.split(".")
    at = b
    for p in parents:
        at = at[int(p)] if isinstance(at, list) else at[p]
    if value is DELETE:
        del at[last]
    else:
        at[last] = value
    return b


DELETE = object()


def fields(path, cases, base=None, tag=""):
    """cases: {field: {label: (value, expect or None for the field)}}."""
    for field, bads in cases.items():
        for label, v in bads.items():
            value, expect = v if isinstance(v, tuple) else (v, None)
            add(f"{path}{tag} {field} {label}", path, expect or field.split(".")[-1],
                body=with_field(path, field, value, base))


# Hostile strings for a field that names something (uuid, interface, path).
HOSTILE = {"newline": "x\nforged: line", "ctrl": "a\u0001b", "esc": "a" + ESC,
           "1MB": MB, "number": 5, "bool": True, "list": ["x"], "object": {}}
UUIDS = {**HOSTILE, "missing": DELETE, "empty": "", "short": "7c0de1", "33 hex": VM + "a",
         "not hex": "7c0de1f2a3b44c5d8e9f00112233aabz", "dotdot": "../../etc/passwd",
         "trailing newline": VM + "\n"}
IFNAMES = {**HOSTILE, "missing": DELETE, "empty": "", "16 chars": "eth0123456789abc",
           "slash": "a/b", "dotdot": "..", "space": "eth 0", "quote": "eth0'", "colon": "eth0:1"}


def only(d, *keys):
    return {k: d[k] for k in keys}


# ---- /host
fields("/host/connect", {
    "hostUuid": UUIDS,
    "sendCommandUrl": {"file": "file:///etc/shadow", "crlf": "http://10.0.0.10:8080/x\r\nHost: evil",
                       "1MB": "http://" + MB, "number": 5, "no scheme": "10.0.0.10:8080/zstack"},
    "version": only(HOSTILE, "newline", "ctrl", "1MB", "number", "list"),
    "iptablesRules": {"string": "-A INPUT -j ACCEPT", "numbers": [5], "object": {}},
    "tcpServerPort": {"string": "7123", "float": 7123.5},
    "ignoreMsrs": {"string": "no", "number": 1},
})
fields("/host/update/configuration", {
    "sendCommandUrl": {"missing": DELETE, "empty": "", "ftp": "ftp://10.0.0.11/x",
                       "newline": "http://10.0.0.11:8080/x\n", "1MB": "http://" + MB, "number": 5,
                       "list": ["http://10.0.0.11:8080/x"]},
})
fields("/host/updatedependency", {
    "hostUuid": only(UUIDS, "newline", "ctrl", "1MB", "number", "short", "dotdot"),
    "enableExpRepo": {"string": "yes", "number": 1},
    "zstackRepo": {"number": 5, "list": ["x"]},
    "excludePackages": {"list": ["qemu"]},
})

# ---- /network: names, VLAN ids, MTUs, uplinks
CHECKPHY = "/network/checkphysicalnetworkinterface"
fields(CHECKPHY, {"interfaceNames": {"string": "eth0", "numbers": [5], "object": {}}})
for label, name in {"newline": "eth0\n", "slash": "../eth0", "1MB": MB, "ctrl": "e\u0001",
                    "16 chars": "eth0123456789abc", "space": "eth 0"}.items():
    add(f"{CHECKPHY} interfaceNames {label}", CHECKPHY, "interfaceNames[0]",
        body={"interfaceNames": [name]})
add(f"{CHECKPHY} missing interface", CHECKPHY, "eth9", body={"interfaceNames": ["eth9"]})
# eth2 is down: a refused list must not bring it up on the way.
add(f"{CHECKPHY} down nic then a bad name", CHECKPHY, "interfaceNames[1]",
    body={"interfaceNames": ["eth2", "eth\n2"]})
add(f"{CHECKPHY} down nic then a missing one", CHECKPHY, "eth9",
    body={"interfaceNames": ["eth2", "eth9"]})

BRIDGE_NAMES = {k: v for k, v in IFNAMES.items() if k != "missing"} | {"missing": DELETE}
MTUS = {"small": 67, "big": 65536, "negative": -1, "string": "1500", "float": 1500.5, "huge": 10 ** 12}
for path in ("/network/l2novlan/createbridge", "/network/l2vlan/createbridge"):
    fields(path, {
        "physicalInterfaceName": IFNAMES | {"loopback": ("lo", "loopback"), "absent": ("eth9", "eth9")},
        "bridgeName": BRIDGE_NAMES,
        "l2NetworkUuid": only(UUIDS, "newline", "ctrl", "esc", "1MB", "number", "short", "dotdot"),
        "mtu": MTUS,
        "isolated": {"string": "yes", "number": 1},
        "disableIptables": {"string": "no"},
        "pvlan": {"set": ("100", "private VLAN"), "1MB": (MB, "private VLAN"),
                  "newline": ("100\nforged", "private VLAN"), "number": 5},
    })
    add(f"{path} uplink is a bridge", path, "is bridge",
        body=with_field(path, "physicalInterfaceName", "br_eth1_100",
                        with_field(path, "bridgeName", "br_new")))
fields("/network/l2novlan/createbridge", {
    "physicalInterfaceName": {"port of another bridge": ("eth0", "eth0")},
}, base=with_field("/network/l2novlan/createbridge", "bridgeName", "br_other"), tag=" (br_other)")
VLANS = {"4095": 4095, "negative": -1, "16 bits": 65536, "huge": 10 ** 12,
         "string": "100", "float": 100.5}
fields("/network/l2vlan/createbridge", {"vlan": VLANS})
add("/network/l2vlan/createbridge vlan ifname too long", "/network/l2vlan/createbridge", "eth123456789abc",
    body=with_field("/network/l2vlan/createbridge", "physicalInterfaceName", "eth123456789abc"))

for path in ("/network/l2novlan/checkbridge", "/network/l2vlan/checkbridge"):
    fields(path, {
        "physicalInterfaceName": IFNAMES | {"absent": ("eth9", "eth9")},
        "bridgeName": BRIDGE_NAMES | {"absent": ("br_nosuch", "br_nosuch")},
        "vlan": {"negative": -1, "4095": 4095, "string": "100"},
    })
add("/network/l2novlan/checkbridge uplink not in it", "/network/l2novlan/checkbridge", "eth1",
    body=with_field("/network/l2novlan/checkbridge", "physicalInterfaceName", "eth1"))
add("/network/l2vlan/checkbridge no such vlan", "/network/l2vlan/checkbridge", "br_eth1_200",
    body={**BASE["/network/l2vlan/checkbridge"], "vlan": 200, "bridgeName": "br_eth1_200"})

for path in ("/network/l2novlan/deletebridge", "/network/l2vlan/deletebridge"):
    fields(path, {
        "physicalInterfaceName": {k: v for k, v in IFNAMES.items() if k != "missing"},
        "bridgeName": BRIDGE_NAMES | {"not a bridge": ("eth0", "not a bridge")},
    })
# The bridge's uplink is eth0 (eth1.100 for the VLAN bridge): another NIC
# would get its addresses, and the uplink would count as a VM port.
for path, lo in (("/network/l2novlan/deletebridge", "loopback"), ("/network/l2vlan/deletebridge", "lo.100")):
    fields(path, {"physicalInterfaceName": {"loopback": ("lo", lo), "absent": ("eth9", "eth9"),
                                            "not its uplink": ("eth2", "not a port")}})
fields("/network/l2novlan/createbridge", {"bridgeName": {"a nic": ("eth1", "not a bridge"),
                                                         "loopback": ("lo", "not a bridge")}})
fields("/network/l2vlan/deletebridge", {"vlan": {"negative": -1, "4095": 4095, "string": "100", "huge": 10 ** 12}})

fields("/network/bridge/addif", {
    "physicalInterfaceName": IFNAMES | {"loopback": ("lo", "loopback"), "absent": ("eth9", "eth9"),
                                        "a bridge": ("br_eth1_100", "is bridge")},
    "bridgeName": BRIDGE_NAMES | {"not a bridge": ("eth0", "not a bridge"),
                                  "absent": ("br_nosuch", "br_nosuch")},
})

# ---- /vm/start: the domain and every host path it names
START_PATH = "/vm/start"
fields(START_PATH, {
    "vmInstanceUuid": UUIDS,
    "cpuNum": {"zero": 0, "negative": -1, "string": "1", "float": 1.5, "u32 overflow": 2 ** 32,
               "does not fit": (100000, "fit")},
    "memory": {"zero": 0, "negative": -1, "string": "1G", "u64 overflow": 2 ** 64,
               "does not fit": (2 ** 50, "fit"), "u64::MAX": (2 ** 64 - 1, "fit")},
    "machineType": {"newline": "pc\nx", "1MB": MB, "virt": "virt", "number": 5},
    "clock": {"newline": "utc\n", "gmt": "gmt"},
    "videoType": {"quote": "vga'/><evil", "1MB": MB},
    "bootDev": {"string": "hd", "newline": ["hd\n"], "usb": ["usb"], "number": [5], "quote": ["hd'/>"]},
    "timeout": {"negative": -1, "string": "300", "u64 overflow": 2 ** 64},
    "vmName": {"ctrl": "vr\u0001", "1MB": MB, "number": 5},
    "rootVolume": {"string": "x", "list": []},
    "rootVolume.installPath": {"outside": "/etc/shadow", "dotdot": "$TMP/volumes/../../../etc/shadow",
                               "symlink": ("$TMP/volumes/esc/shadow", "symlink"),
                               "relative": "root.qcow2", "1MB": "/" + MB, "nul": "$TMP/volumes/a\u0000b",
                               "newline": "$TMP/volumes/a\nb.qcow2", "number": 5},
    "rootVolume.format": {"vmdk": "vmdk", "newline": "qcow2\n"},
    "rootVolume.cacheMode": {"quote": "none'", "odd": "sometimes"},
    "rootVolume.deviceType": {"block": "block", "1MB": MB},
    "rootVolume.volumeUuid": {"ctrl": "v\u0001"},
    "dataVolumes": {"string": "x", "no path": ([{"deviceId": 1}], "installPath"),
                    "outside": ([{"installPath": "/etc/passwd", "deviceId": 1}], "installPath")},
    "nics": {"string": "x", "entry string": ["x"]},
    "nics.0.mac": {"short": "fa:4c:ee:9a:76", "hex": "zz:4c:ee:9a:76:00", "newline": "fa:4c:ee:9a:76:00\n",
                   "1MB": MB, "number": 7},
    "nics.0.bridgeName": {"empty": "", "newline": "br\n", "slash": "br/x", "1MB": MB},
    "nics.0.nicInternalName": {"16 chars": "vnic1234567890ab", "semicolon": "vnic;rm", "newline": "vnic\n"},
    "nics.0.driverType": {"rtl": "rtl8139", "quote": "virtio'"},
    "nics.0.mtu": {"negative": -1, "string": "1500", "too big": 70000, "too small": 40},
    "nics.0.ips": {"string": "10.0.0.200"},
    "addons": {"string": "x"},
    "addons.channel.socketPath": {"outside": "/etc/evil.sock", "dotdot": "$TMP/agentSocket/../evil.sock",
                                  "relative": "evil.sock", "subdir": "$TMP/agentSocket/sub/evil.sock",
                                  "symlink": ("$TMP/agentSocket/link", "symlink"),
                                  "regular file": ("$TMP/agentSocket/notasocket", "not a socket"),
                                  "1MB": "/" + MB, "newline": "$TMP/agentSocket/a\nb"},
    "addons.channel.targetName": {"ctrl": "applianceVm\u0001"},
})
# The StartVmCmd/VolumeTO/NicTO fields the agent decodes but does not use
# (Java's boxed and primitive types): a wrong type or range is refused by
# the strict decode, naming the field.
fields(START_PATH, {
    "x2apic": {"string": "yes", "null-like": "null"},
    "useNuma": {"number": 1},
    "acpi": {"string": "on"},
    "createPaused": {"string": "false"},
    "socketNum": {"negative": -1, "string": "2"},
    "cpuOnSocket": {"u32 overflow": 2 ** 32},
    "threadsPerCore": {"float": 1.5},
    "maxVcpuNum": {"negative": -1},
    "vmInternalId": {"string": "5", "i64 overflow": 2 ** 63},
    "bootMenuSplashTimeout": {"negative": -1},
    "soundType": {"number": 5},
    "memBalloon": {"string": "x"},
    "rootVolume.bootOrder": {"string": "1", "i32 overflow": 2 ** 31},
    "rootVolume.physicalBlockSize": {"string": "512"},
    "rootVolume.useVirtio": {"string": "true"},
    "nics.0.bootOrder": {"string": "1"},
    "nics.0.useVirtio": {"number": 1},
    "nics.0.isolated": {"string": "no"},
})
for field, label in (("mac", "the same MAC"), ("nicInternalName", "the same tap name")):
    nics = copy.deepcopy(NEW_START["nics"])
    nics[1][field] = nics[0][field]
    add(f"{START_PATH} two nics with {label}", START_PATH, f"nics[1].{field}",
        body=with_field(START_PATH, "nics", nics))
clean = with_field(START_PATH, "nics.0.cleanTraffic", True)
fields(START_PATH, {"nics.0.ips": {"not an ip": ["10.0.0.300"]},
                    "nics.0.nicInternalName": {"missing": DELETE}}, base=clean, tag=" (cleanTraffic)")
for label, (k, v, expect) in {
        "kernel outside": ("kernel", "/boot/vmlinuz", "kernel"),
        "kernel relative": ("kernel", "vmlinuz", "kernel"),
        "kernel dotdot": ("kernel", "$TMP/images/../../../boot/vmlinuz", "kernel"),
        "initrd outside": ("initrd", "/etc/shadow", "initrd"),
        "cmdline newline": ("cmdline", "console=ttyS0\ninit=/bin/sh", "cmdline")}.items():
    dkb = {"kernel": "$TMP/images/vmlinuz", "initrd": "$TMP/images/initrd.img", "cmdline": "console=ttyS0"}
    dkb[k] = v
    add(f"{START_PATH} addons.directKernelBoot.{label}", START_PATH, expect,
        body=with_field(START_PATH, "addons.directKernelBoot", dkb))
add(f"{START_PATH} u64::MAX timeout and a bad machineType", START_PATH, "machineType",
    body={**NEW_START, "timeout": 2 ** 64 - 1, "machineType": "virt"})
add(f"{START_PATH} overflowing topology and a bad bootDev", START_PATH, "bootDev",
    body={**NEW_START, "socketNum": 2 ** 32 - 1, "cpuOnSocket": 2, "bootDev": ["usb"]})

# ---- /vm lifecycle and queries
for path, field in (("/vm/stop", "uuid"), ("/vm/destroy", "uuid"), ("/vm/reboot", "uuid"),
                    ("/vm/console/tail", "uuid"), ("/vm/getvncport", "vmUuid"),
                    ("/vm/attachnic", "vmUuid"), ("/vm/detachnic", "vmUuid")):
    fields(path, {field: UUIDS})
fields("/vm/stop", {
    "type": {"odd": "gentle", "newline": "grace\n", "1MB": MB, "number": 1},
    "timeout": {"negative": -1, "string": "120", "u64 overflow": 2 ** 64},
})
add("/vm/stop u64::MAX timeout and a bad type", "/vm/stop", "type",
    body={**BASE["/vm/stop"], "timeout": 2 ** 64 - 1, "type": "gentle"})
for path, field in (("/vm/reboot", "uuid"), ("/vm/getvncport", "vmUuid"), ("/vm/attachnic", "vmUuid")):
    add(f"{path} unknown vm", path, UNKNOWN_VM, body=with_field(path, field, UNKNOWN_VM))
add("/vm/reboot unknown vm, u64::MAX timeout", "/vm/reboot", UNKNOWN_VM,
    body={**BASE["/vm/reboot"], "uuid": UNKNOWN_VM, "timeout": 2 ** 64 - 1})
fields("/vm/reboot", {
    "bootDev": {"string": "hd", "usb": ["usb"], "quote": ["hd'/><evil"], "newline": ["hd\n"], "number": [5]},
    "timeout": {"negative": -1, "string": "300"},
})
add("/vm/console/tail unknown vm", "/vm/console/tail", "console log",
    body={"uuid": UNKNOWN_VM, "maxBytes": 4096})
add("/vm/console/tail unknown vm, u64::MAX maxBytes", "/vm/console/tail", "console log",
    body={"uuid": UNKNOWN_VM, "maxBytes": 2 ** 64 - 1})
fields("/vm/console/tail", {"maxBytes": {"negative": -1, "string": "4096"}})
for path in ("/vm/checkstate", "/vm/getvirtualizerinfo"):
    fields(path, {"vmUuids": {"string": VM, "object": {}, "numbers": [5], "1MB": ([MB], "vmUuids[0]"),
                              "newline": ([VM + "\nforged"], "vmUuids[0]"),
                              "dotdot": (["../../etc/passwd"], "vmUuids[0]"),
                              "second bad": ([VM, "a\u0001b"], "vmUuids[1]")}})
fields("/vm/volumesync", {"storagePaths": {
    "string": "/var/lib/zstack/local/", "numbers": [5],
    "outside": (["file:///etc"], "storagePaths[0]"),
    "dotdot": (["file://$TMP/volumes/../../../etc"], "storagePaths[0]"),
    "symlink": (["file://$TMP/volumes/esc"], "symlink"),
    "relative": (["file://volumes"], "storagePaths[0]"),
    "1MB": (["file:///" + MB], "storagePaths[0]"),
    "second bad": (["file://$TMP/volumes", "file:///root"], "storagePaths[1]")}})

NIC = {"nic": {"string": "x", "list": []},
       "nic.mac": {"missing": DELETE, "empty": "", "short": "fa:4c:ee:9a:76", "hex": "zz:4c:ee:9a:76:02",
                   "newline": "fa:4c:ee:9a:76:02\n", "1MB": MB, "number": 7},
       "nic.nicInternalName": {"16 chars": "vnic1234567890ab", "semicolon": "vnic;rm", "newline": "vnic\n",
                               "slash": "../vnic"}}
fields("/vm/attachnic", NIC | {
    "nic.bridgeName": {"missing": DELETE, "newline": "br\n", "slash": "br/x", "1MB": MB},
    "nic.driverType": {"rtl": "rtl8139"},
    "nic.mtu": {"negative": -1, "string": "1500", "too big": 70000, "too small": 40},
    "nic.ips": {"string": "192.168.200.1"},
})
clean = with_field("/vm/attachnic", "nic.cleanTraffic", True)
fields("/vm/attachnic", {"nic.ips": {"not an ip": ["192.168.200.300"], "newline": ["192.168.200.1\n"]},
                         "nic.nicInternalName": {"missing": DELETE}}, base=clean, tag=" (cleanTraffic)")
fields("/vm/detachnic", NIC)

BOOT = "/appliancevm/setbootstrapinfo"
fields(BOOT, {
    "socketPath": {"missing": DELETE, "empty": "", "outside": "/etc/evil.sock",
                   "dotdot": "$TMP/agentSocket/../evil.sock", "relative": "evil.sock",
                   "subdir": "$TMP/agentSocket/sub/evil.sock",
                   "symlink": ("$TMP/agentSocket/link", "symlink"),
                   "regular file": ("$TMP/agentSocket/notasocket", "not a socket"),
                   "1MB": "/" + MB, "newline": "$TMP/agentSocket/a\nb", "number": 5},
    # The node always sends the router's bootstrap information
    # (ApplianceVmKvmBootstrapFlow: prepareBootstrapInformation).
    "info": {"string": "x", "list": [], "number": 5, "missing": DELETE, "empty": {}},
    "bootStrapInfoTimeout": {"negative": -1, "string": "30", "u64 overflow": 2 ** 64},
})
add(f"{BOOT} u64::MAX timeout and a path outside", BOOT, "socketPath",
    body={**BASE[BOOT], "bootStrapInfoTimeout": 2 ** 64 - 1, "socketPath": "/etc/evil.sock"})

for c in out:
    sys.stdout.write(json.dumps(c, ensure_ascii=True) + "\n")
counts = {}
for c in out:
    fam = "/".join(c["path"].split("/")[:2])
    counts[fam] = counts.get(fam, 0) + 1
sys.stderr.write(f"{len(out)} bad bodies {counts}\n")
