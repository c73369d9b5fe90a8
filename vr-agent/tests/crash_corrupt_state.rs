//! A corrupt persisted state must not keep the router from serving: the
//! agent quarantines the file, starts empty (uuid "") and the controller
//! resyncs it.

mod common;

use common::*;

#[test]
fn a_truncated_state_file_is_quarantined_and_the_agent_serves_empty() {
    testbed::require_privileged!();
    let mut lab = Lab::new().unwrap();
    lab.base_config();
    lab.kill_agent();
    let dir = lab.state.path().to_path_buf();
    let state = std::fs::read(dir.join("state.json")).unwrap();
    let torn = &state[..state.len() / 2];
    std::fs::write(dir.join("state.json"), torn).unwrap();
    lab.start_agent().unwrap();
    let (code, body) = testbed::http_get(&lab.ctl, &format!("{AGENT}/state")).unwrap();
    assert_eq!(code, 200, "{body}");
    let (_, ping) = lab.post("/ping", serde_json::json!({"uuid": "x"})).unwrap();
    assert_eq!(ping["uuid"], "", "{ping}");
    assert!(
        !body.contains(PRIV_MAC),
        "started with the old state: {body}"
    );
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), torn);
    assert!(lab.log().contains("ERROR"), "{}", lab.log());
    // The controller's resync works.
    lab.base_config();
}
