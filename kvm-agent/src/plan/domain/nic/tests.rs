use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn nic(clean: Option<bool>, tap: &str, ips: &[&str]) -> NicTo {
    NicTo {
        mac: "FA:4C:EE:9A:76:00".into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
        bridge_name: "br_eth0".into(),
        nic_internal_name: tap.into(),
        clean_traffic: clean,
        ..Default::default()
    }
}

#[test]
fn guard_only_when_asked_and_refused_without_a_tap() {
    assert_eq!(guard_of(&nic(None, "vnic1.0", &[]), "nic").unwrap(), None);
    assert_eq!(
        guard_of(&nic(Some(false), "vnic1.0", &[]), "nic").unwrap(),
        None
    );
    let e = guard_of(&nic(Some(true), "", &["10.0.0.5"]), "nics[0]").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("field nics[0].nicInternalName: \"\" is required with cleanTraffic=true"),
        "{e}"
    );
    let e = guard_of(&nic(Some(true), "vnic1.0", &["10.0.0.x"]), "nic").unwrap_err();
    assert_eq!(
        e.to_string(),
        "field nic.ips: \"10.0.0.x\" is not an IP address"
    );
    let g = guard_of(
        &nic(Some(true), "vnic1.0", &["10.0.0.5", "2001:db8::5"]),
        "nic",
    )
    .unwrap()
    .unwrap();
    assert_eq!(g.mac, "fa:4c:ee:9a:76:00");
    assert_eq!(g.ipv4, ["10.0.0.5".parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(g.ipv6, ["2001:db8::5".parse::<Ipv6Addr>().unwrap()]);
}
