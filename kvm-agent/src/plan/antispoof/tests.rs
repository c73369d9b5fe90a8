use super::*;

/// The spec `plan::domain::guard_of` builds for a `cleanTraffic` NIC on
/// tap `vnic1.0`.
fn spec(ipv4: &[Ipv4Addr], ipv6: &[Ipv6Addr]) -> NicGuardSpec {
    NicGuardSpec {
        tap: "vnic1.0".into(),
        mac: "fa:4c:ee:9a:76:00".into(),
        ipv4: ipv4.to_vec(),
        ipv6: ipv6.to_vec(),
    }
}

#[test]
fn scripts_bind_a_chain_per_tap() {
    assert_eq!(chain_name("vnic12.0"), "nic_vnic12_2e0");
    assert_eq!(chain_name("tap-a"), "nic_tap_2da");
    let g = spec(&["10.0.0.5".parse().unwrap()], &[]);
    let s = apply_script(&g);
    for want in [
        "add rule bridge kvm_agent_antispoof nic_vnic1_2e0 ether saddr != fa:4c:ee:9a:76:00 drop",
        "arp saddr ip != { 0.0.0.0, 10.0.0.5 } drop",
        "ip saddr != { 10.0.0.5 } drop",
        "ether type != { arp, ip } drop",
        "add element bridge kvm_agent_antispoof guards { \"vnic1.0\" : jump nic_vnic1_2e0 }",
    ] {
        assert!(s.contains(want), "{want} missing in\n{s}");
    }
    assert!(!s.contains("ip6 saddr"), "{s}");
    // MAC only when the NIC has no IPs: every IP protocol passes.
    let s = apply_script(&spec(&[], &[]));
    assert!(s.contains("ether type != { arp, ip, ip6 } drop"), "{s}");
    assert!(!s.contains("ip saddr"), "{s}");
    let r = remove_script("vnic1.0");
    assert!(r.ends_with(
        "delete element bridge kvm_agent_antispoof guards { \"vnic1.0\" }\n\
         flush chain bridge kvm_agent_antispoof nic_vnic1_2e0\n\
         delete chain bridge kvm_agent_antispoof nic_vnic1_2e0\n"
    ));
}
