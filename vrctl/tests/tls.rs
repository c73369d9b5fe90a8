//! vrctl against a kvm-agent with mutual TLS and a bearer token on (issue
//! 14), both real processes in a namespace: the CA and certificates made
//! with `vrctl pki`, the right credentials work, and each missing or wrong
//! one fails with the message that says what to change.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Run, kvm_agent_bin, vrctl};
use testbed::{Netns, TempDir};

const URL: &str = "http://127.0.0.1:7070";

fn ok(r: &Run, what: &str) {
    assert_eq!(r.code, 0, "{what}: {}", r.stderr);
}

fn fails_with(r: &Run, code: i32, words: &[&str]) {
    assert_eq!(r.code, code, "exit status; stderr:\n{}", r.stderr);
    for w in words {
        assert!(r.stderr.contains(w), "{w:?} missing from:\n{}", r.stderr);
    }
}

fn p(dir: &Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

#[test]
fn vrctl_speaks_mutual_tls_and_the_token_to_kvm_agent_and_names_each_refusal() {
    testbed::require_privileged!();
    let ns = Netns::new("tlshost").unwrap();
    let state = TempDir::new("tlskvm").unwrap();
    let pki = state.path().join("pki");
    let other = state.path().join("other-pki");
    let token = state.path().join("token");

    // The CA, refused a second time without --force.
    ok(
        &vrctl(&["pki", "init", "--dir", &pki.display().to_string()], &[]),
        "pki init",
    );
    let again = vrctl(&["pki", "init", "--dir", &pki.display().to_string()], &[]);
    fails_with(&again, 73, &["already holds a CA", "--force"]);
    ok(
        &vrctl(
            &[
                "pki",
                "init",
                "--dir",
                &other.display().to_string(),
                "--name",
                "other",
            ],
            &[],
        ),
        "another CA",
    );
    ok(
        &vrctl(
            &[
                "pki",
                "server",
                "--dir",
                &pki.display().to_string(),
                "--name",
                "host",
                "--ip",
                "127.0.0.1",
                "--out",
                &p(&pki, "kvm"),
            ],
            &[],
        ),
        "server certificate",
    );
    ok(
        &vrctl(
            &["pki", "token", "--out", &token.display().to_string()],
            &[],
        ),
        "token",
    );

    let bin = kvm_agent_bin();
    let console = state.path().join("console");
    let sd = state.path().join("kvm");
    let mut cmd = ns.command(
        bin.to_str().unwrap(),
        &[
            "--listen",
            "127.0.0.1:7070",
            "--state-dir",
            sd.to_str().unwrap(),
            "--libvirt-uri",
            "test:///default",
            "--console-log-dir",
            console.to_str().unwrap(),
            "--tls-cert",
            &p(&pki, "kvm.pem"),
            "--tls-key",
            &p(&pki, "kvm.key"),
            "--tls-client-ca",
            &p(&pki, "ca.pem"),
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
    );
    cmd.env("KVM_AGENT_SOCKET_DIR", state.path().join("sock"));
    let agent = testbed::Proc::start(cmd).unwrap();
    let up = testbed::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        ns.run(|| std::net::TcpStream::connect("127.0.0.1:7070"))
            .is_ok()
    });
    assert!(up, "kvm-agent did not listen:\n{}", agent.log());

    let run = |creds: &[&str], cmd: &[&str]| {
        let mut all = vec!["--netns", ns.name()];
        all.extend_from_slice(creds);
        all.extend_from_slice(cmd);
        vrctl(&all, &[])
    };
    let pki_s = pki.display().to_string();
    let tok = token.display().to_string();
    let right = ["--pki-dir", pki_s.as_str(), "--token-file", tok.as_str()];
    let capacity = ["host", "--agent", URL, "capacity"];

    // The right credentials: connect (pins us as the controller), then a
    // command; the same through the environment.
    ok(
        &run(
            &right,
            &[
                "host",
                "--agent",
                URL,
                "connect",
                "--uuid",
                "5e570000000000000000000000000001",
            ],
        ),
        "connect",
    );
    let r = run(&right, &capacity);
    ok(&r, "capacity");
    assert!(r.stdout.contains("totalMemory"), "{}", r.stdout);
    let ca = p(&pki, "ca.pem");
    let (cert, key) = (p(&pki, "vrctl.pem"), p(&pki, "vrctl.key"));
    let env = vrctl(
        &["--netns", ns.name(), "host", "--agent", URL, "capacity"],
        &[
            ("VRCTL_CA", &ca),
            ("VRCTL_CERT", &cert),
            ("VRCTL_KEY", &key),
            ("VRCTL_TOKEN_FILE", &tok),
        ],
    );
    ok(&env, "capacity with VRCTL_*");

    // No client certificate.
    fails_with(
        &run(&["--ca", &ca, "--token-file", &tok], &capacity),
        7,
        &["the agent requires a client certificate (use --cert/--key)"],
    );
    // The agent's certificate is from a CA we do not trust.
    let other_s = other.display().to_string();
    fails_with(
        &run(&["--pki-dir", &other_s, "--token-file", &tok], &capacity),
        7,
        &["the agent's certificate is not signed by --ca"],
    );
    // Our certificate is from a CA the agent does not trust.
    fails_with(
        &run(
            &[
                "--ca",
                &ca,
                "--cert",
                &p(&other, "vrctl.pem"),
                "--key",
                &p(&other, "vrctl.key"),
                "--token-file",
                &tok,
            ],
            &capacity,
        ),
        7,
        &["does not accept our client certificate"],
    );
    // No token.
    fails_with(
        &run(&["--pki-dir", &pki_s], &capacity),
        7,
        &["the agent requires a bearer token (--token-file)"],
    );
    // Plain HTTP to the TLS port.
    fails_with(&run(&[], &capacity), 7, &["requires TLS (use --ca"]);
    // A file that is not there is named.
    fails_with(
        &run(&["--ca", "/nonexistent/ca.pem"], &capacity),
        78,
        &["/nonexistent/ca.pem", "cannot read the CA certificate"],
    );
    // Exit statuses (vrctl::exit): 7 a refusal either way (TLS, token),
    // 73 a file not overwritten, 78 vrctl's own credentials unusable.
    // The router's status check names the refusal as a diagnosis (exit 7)
    // before any path: the handshake already fails.
    fails_with(
        &run(&["--ca", &ca], &["vr", "status", "--agent", URL]),
        7,
        &["refuses this controller", "requires a client certificate"],
    );
    drop(agent);
}
