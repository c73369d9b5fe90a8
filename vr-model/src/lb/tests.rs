use super::from_wire::*;
use super::*;
use common::vr;

fn lb(params: &[&str]) -> vr::LbInfo {
    vr::LbInfo {
        lb_uuid: "lb1".into(),
        listener_uuid: "l1".into(),
        vip: Some("172.20.10.102".into()),
        nic_ips: vec!["192.168.100.10".into(), "192.168.100.11".into()],
        instance_port: 80,
        load_balancer_port: 80,
        mode: "http".into(),
        parameters: params.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn parameters_are_parsed_and_unknown_kept() {
    let l = listener(
        0,
        &lb(&[
            "balancerWeight::192.168.100.11::3",
            "balancerAlgorithm::weightroundrobin",
            "healthCheckTarget::http:8080",
            "healthCheckParameter::GET:/health:http_2xx,http_3xx",
            "accessControlStatus::enable",
            "aclType::white",
            "aclEntry::10.0.0.0/8,192.168.1.1-192.168.1.6",
            "frobnicate::yes",
        ]),
    )
    .unwrap()
    .unwrap();
    assert_eq!(l.backends[1].weight, 3);
    assert_eq!(l.backends[0].weight, 100);
    assert_eq!(l.params.algorithm, Some(Algorithm::StaticRr));
    assert_eq!(l.params.health.port, Some(8080));
    assert_eq!(
        l.params.health.kind,
        HealthKind::Http {
            method: "GET".into(),
            uri: "/health".into(),
            classes: vec![2, 3]
        }
    );
    let acl = l.params.acl.unwrap();
    let got: Vec<String> = acl.entries.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        got,
        [
            "10.0.0.0/8",
            "192.168.1.1/32",
            "192.168.1.2/31",
            "192.168.1.4/31",
            "192.168.1.6/32"
        ]
    );
    assert_eq!(l.ignored_parameters, vec!["frobnicate::yes".to_string()]);
}

#[test]
fn errors_name_listener_and_key() {
    let e = listener(0, &lb(&["healthCheckInterval::soon"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("listenerUuid l1") && e.contains("healthCheckInterval"),
        "{e}"
    );
    let e = listener(
        0,
        &lb(&[
            "healthCheckParameter::GET:/a b:http_2xx",
            "healthCheckTarget::http:default",
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("healthCheckParameter"), "{e}");
}

#[test]
fn no_backends_means_removed() {
    let mut x = lb(&[]);
    x.nic_ips.clear();
    assert_eq!(listeners(&[x]).unwrap(), (vec![], vec!["l1".to_string()]));
}

#[test]
fn same_vip_port_is_a_conflict_and_used_certs_stay() {
    let a = listener(0, &lb(&[])).unwrap().unwrap();
    let mut b = a.clone();
    b.uuid = "l2".into();
    let mut s = LbState::default();
    s.apply(&LbEdit::Refresh {
        listeners: vec![a, b.clone()],
        remove: vec![],
        log: false,
    })
    .unwrap();
    let e = s.validate().unwrap_err().to_string();
    assert!(
        e.contains("listener l2") && e.contains("listener l1"),
        "{e}"
    );
    let mut s = LbState::default();
    s.apply(&LbEdit::Certs(vec!["c1".into(), "c2".into()]))
        .unwrap();
    b.mode = LbMode::Https;
    b.certificate = Some("c1".into());
    s.apply(&LbEdit::Refresh {
        listeners: vec![b],
        remove: vec![],
        log: false,
    })
    .unwrap();
    assert_eq!(s.certificates.iter().collect::<Vec<_>>(), vec!["c1"]);
    assert!(s.apply(&LbEdit::DeleteCert("c1".into())).is_err());
}
