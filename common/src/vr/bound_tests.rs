//! Size bounds, and the fields without which a destructive command is
//! refused.

use super::*;

#[test]
fn long_or_control_strings_are_refused_by_path_without_quoting_them() {
    let mut c = PortForwardingCmd::default();
    c.rules.push(PortForwardingRule {
        uuid: "u".repeat(50 << 20),
        ..Default::default()
    });
    let e = check_bounds(&c).unwrap_err();
    assert!(
        e.starts_with("rules[0].uuid: is 52428800 bytes, more than the 36"),
        "{e}"
    );
    assert!(e.len() < 200);
    c.rules[0].uuid = "a\nforged log line".into();
    let e = check_bounds(&c).unwrap_err();
    assert!(
        e.contains("rules[0].uuid: contains the control character '\\n'"),
        "{e}"
    );
    c.rules[0].uuid = "3f1a9c2e5b7d4e8f9a0b1c2d3e4f5a6b".into();
    check_bounds(&c).unwrap();
    let mut certs = CertificatesCmd::default();
    certs
        .certs
        .insert("c1".into(), "-----BEGIN CERTIFICATE-----\nAAA\n".into());
    check_bounds(&certs).unwrap();
    certs.certs.insert("c2".into(), "x".repeat(MAX_PEM + 1));
    assert!(check_bounds(&certs).unwrap_err().contains("certs[\"c2\"]"));
    let mut certs = CertificatesCmd::default();
    certs.certs.insert("k".repeat(40), String::new());
    assert!(check_bounds(&certs).unwrap_err().contains("certs key"));
}

#[test]
fn destructive_commands_need_their_list() {
    let e = serde_json::from_str::<SyncSnatCmd>("{}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("snats"), "{e}");
    assert!(
        serde_json::from_str::<SyncEipCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("eips")
    );
    assert!(
        serde_json::from_str::<PortForwardingCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("rules")
    );
    assert!(
        serde_json::from_str::<DhcpServersCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("dhcpServers")
    );
    assert!(
        serde_json::from_str::<DnsCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("dns")
    );
    assert!(
        serde_json::from_str::<LbCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("lbs")
    );
    assert!(
        serde_json::from_str::<CertificatesCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("certs")
    );
    assert!(
        serde_json::from_str::<CreateVipCmd>("{}")
            .unwrap_err()
            .to_string()
            .contains("vips")
    );
    // The four whose senders were read later (see their types).
    let missing = |r: Result<(), serde_json::Error>| r.unwrap_err().to_string();
    let e = missing(serde_json::from_str::<SetVpcDnsCmd>(r#"{"nicMac":[]}"#).map(drop));
    assert!(e.contains("missing field `dns`"), "{e}");
    let e = missing(serde_json::from_str::<SetVpcDnsCmd>(r#"{"dns":[]}"#).map(drop));
    assert!(e.contains("missing field `nicMac`"), "{e}");
    let e = missing(serde_json::from_str::<AddDhcpCmd>(r#"{"rebuild":true}"#).map(drop));
    assert!(e.contains("missing field `dhcpEntries`"), "{e}");
    let e = missing(serde_json::from_str::<RemoveSnatCmd>("{}").map(drop));
    assert!(e.contains("missing field `natInfo`"), "{e}");
    let e =
        missing(serde_json::from_str::<SetSnatServiceStateCmd>(r#"{"enabled":false}"#).map(drop));
    assert!(e.contains("missing field `snats`"), "{e}");
    let e = missing(serde_json::from_str::<SetSnatServiceStateCmd>(r#"{"snats":[]}"#).map(drop));
    assert!(e.contains("missing field `enabled`"), "{e}");
    // `rebuild` is a Java primitive (always written) but its absence
    // only means "merge", which removes nothing.
    assert!(
        !serde_json::from_str::<AddDhcpCmd>(r#"{"dhcpEntries":[]}"#)
            .unwrap()
            .rebuild
    );
    // The empty lists the node sends to remove everything stay valid.
    assert!(serde_json::from_str::<SyncEipCmd>(r#"{"eips":[]}"#).is_ok());
    assert!(serde_json::from_str::<DhcpServersCmd>(r#"{"dhcpServers":[]}"#).is_ok());
    assert!(
        serde_json::from_str::<SyncSnatCmd>(r#"{"snats":[]}"#)
            .unwrap()
            .enable
    );
}
