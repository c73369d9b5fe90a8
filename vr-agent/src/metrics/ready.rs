//! `GET /readyz`: whether the data plane is what the controller asked for.

use serde::Serialize;

/// What readiness is judged on.
pub struct Facts<'a> {
    pub last_apply_error: Option<&'a str>,
    pub drift_unrepaired: bool,
    pub dnsmasq_healthy: bool,
    pub haproxy_healthy: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// What is wrong, empty when ready.
    pub problems: Vec<String>,
}

pub fn judge(f: &Facts) -> Readiness {
    let mut problems = vec![];
    if let Some(e) = f.last_apply_error {
        problems.push(format!(
            "last apply failed: {}",
            common::text::excerpt_n(e, 200)
        ));
    }
    if f.drift_unrepaired {
        problems.push("an nft table drifted and could not be replaced".into());
    }
    if !f.dnsmasq_healthy {
        problems.push("dnsmasq does not answer".into());
    }
    if !f.haproxy_healthy {
        problems.push("haproxy does not answer".into());
    }
    Readiness {
        ready: problems.is_empty(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Facts<'static> {
        Facts {
            last_apply_error: None,
            drift_unrepaired: false,
            dnsmasq_healthy: true,
            haproxy_healthy: true,
        }
    }

    #[test]
    fn each_fault_is_named() {
        assert_eq!(
            judge(&ok()),
            Readiness {
                ready: true,
                problems: vec![]
            }
        );
        for (f, word) in [
            (
                Facts {
                    last_apply_error: Some("nft: boom"),
                    ..ok()
                },
                "nft: boom",
            ),
            (
                Facts {
                    drift_unrepaired: true,
                    ..ok()
                },
                "drifted",
            ),
            (
                Facts {
                    dnsmasq_healthy: false,
                    ..ok()
                },
                "dnsmasq",
            ),
            (
                Facts {
                    haproxy_healthy: false,
                    ..ok()
                },
                "haproxy",
            ),
        ] {
            let r = judge(&f);
            assert!(!r.ready);
            assert_eq!(r.problems.len(), 1);
            assert!(r.problems[0].contains(word), "{:?}", r.problems);
        }
    }
}
