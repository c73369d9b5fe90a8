//! The conformance suite (conformance/README.md): every fixture under
//! `conformance/vr` through the real router and engine over fake side
//! effects (kernel, firewall, conntrack, dnsmasq, haproxy; a real state
//! store in a temp dir), sent the way `RESTFacadeImpl` sends it.

use std::collections::BTreeMap;
use std::sync::Arc;

use testbed::conformance::{self, Fixture, exchange};
use testbed::{CallbackReceiver, MGMT_MAC, PRIV_MAC, PUB_MAC, TempDir};
use vr_agent::api::{AppState, router};
use vr_agent::engine::Engine;
use vr_agent::sys::Sys;
use vr_agent::sys::conntrack::FakeConntrack;
use vr_agent::sys::dnsmasq::FakeDnsmasq;
use vr_agent::sys::firewall::FakeFirewall;
use vr_agent::sys::haproxy::FakeHaproxy;
use vr_agent::sys::netlink::FakeNetlink;
use vr_agent::sys::store::FileStore;

/// The reference router (zstack-vr-protocol.md section 4): management eth0,
/// public eth1, private eth2, known by MAC.
async fn router_over_fakes(dir: &std::path::Path) -> axum::Router {
    let netlink = Arc::new(FakeNetlink::default());
    *netlink.links.lock().unwrap() = BTreeMap::from([
        (MGMT_MAC.parse().unwrap(), "eth0".parse().unwrap()),
        (PUB_MAC.parse().unwrap(), "eth1".parse().unwrap()),
        (PRIV_MAC.parse().unwrap(), "eth2".parse().unwrap()),
    ]);
    let sys = Sys {
        firewall: Arc::new(FakeFirewall::default()),
        netlink,
        conntrack: Arc::new(FakeConntrack::default()),
        store: Arc::new(FileStore::new(dir.join("state")).unwrap()),
        dnsmasq: Arc::new(FakeDnsmasq::new()),
        haproxy: Arc::new(FakeHaproxy::new()),
        sysctl: Arc::new(vr_agent::sys::sysctl::FakeSysctl::default()),
    };
    let engine = Engine::start(sys, 7272).await.unwrap();
    router(AppState {
        engine: Arc::new(tokio::sync::Mutex::new(engine)),
        uuid: Default::default(),
        sources: std::sync::Arc::new(vr_agent::api::guard::Sources::any()),
        credentials: std::sync::Arc::new(vr_agent::credentials::Live::none()),
        ha: None,
    })
}

/// Runs one fixture on a fresh router; `Err` is its report.
async fn run(f: &Fixture) -> Result<(), String> {
    let dir = TempDir::new("vr-conformance").unwrap();
    let app = router_over_fakes(dir.path()).await;
    let cb = CallbackReceiver::start(None).unwrap();
    let (status, reply) = exchange::run(f, &app, &cb, dir.path()).await?;
    f.check(status, &reply)
}

async fn run_all(fixtures: &[Fixture]) -> Vec<(String, String)> {
    let mut failed = vec![];
    for f in fixtures {
        if let Err(report) = run(f).await {
            failed.push((f.name.clone(), report));
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_conforms() {
    let fixtures = conformance::load_dir(&conformance::fixture_dir("vr")).unwrap();
    let failed = run_all(&fixtures).await;
    exchange::assert_all_pass("vr", fixtures.len(), &failed);
}

#[test]
fn every_served_path_has_a_fixture() {
    let served = conformance::routes_in(include_str!("../src/api/mod.rs"));
    assert!(served.contains(&"/createvip".to_string()), "{served:?}");
    let fixtures = conformance::load_dir(&conformance::fixture_dir("vr")).unwrap();
    let missing = conformance::uncovered(&served, &fixtures);
    assert!(
        missing.is_empty(),
        "paths served without a fixture: {missing:?}"
    );
}

/// The checker fails where it must: a field the node would read that the
/// real reply lacks is reported with the fixture's name and source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_the_reply_lacks_is_reported() {
    let dir = conformance::fixture_dir("vr");
    let text = std::fs::read_to_string(dir.join("init.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["reply"]["noSuchField"] = "string".into();
    v["reply"]["zvrVersion"] = "boolean".into();
    let f = Fixture::parse("conformance/vr/init.json", &v.to_string()).unwrap();
    let failed = run_all(&[f]).await;
    assert_eq!(failed.len(), 1);
    let report = &failed[0].1;
    assert!(
        report.contains("conformance/vr/init.json: POST /init (async)"),
        "{report}"
    );
    assert!(report.contains("zstackio/zstack@5a29293b"), "{report}");
    assert!(report.contains("noSuchField: missing"), "{report}");
    assert!(report.contains("zvrVersion: is string"), "{report}");
}
