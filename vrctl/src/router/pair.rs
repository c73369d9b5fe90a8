//! The node's answer to two masters in an HA pair (issue 17): ask the
//! peer its role with `/syncVpcRouterHa`; only when it is Master too,
//! restart keepalived on this half with `/restartKeepalived` (the new one
//! starts as backup, so the half gives the shared addresses up at once).
//! A half whose peer is not Master is left alone: demoting it would leave
//! the pair without a master.

use serde_json::json;

use super::RouterError;
use crate::client::Client;
use crate::spec::RouterSpec;

/// What a demotion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Demoted {
    /// The peer's role as `/syncVpcRouterHa` answered.
    pub peer: String,
    /// This half's role after the restart (`/ping`).
    pub now: String,
}

/// The peer's agent: the same scheme and port as this half's, on the
/// `[ha]` section's `peerIp`.
pub fn peer_agent(spec: &RouterSpec) -> Result<String, RouterError> {
    let ha = spec
        .ha
        .as_ref()
        .ok_or_else(|| RouterError::Description("the description has no [ha] section".into()))?;
    let me = spec.agent_url()?;
    let (scheme, rest) = me.split_once("://").unwrap_or(("http", me.as_str()));
    let port = rest
        .split('/')
        .next()
        .and_then(|hp| hp.rsplit_once(':'))
        .map_or("7272", |(_, p)| p);
    Ok(format!("{scheme}://{}:{port}", ha.peer_ip))
}

/// `/syncVpcRouterHa` to `peer`, then `/restartKeepalived` to `me` if
/// both are Master (a half that is not master has nothing to give up).
pub async fn demote(me: &Client, peer: &Client) -> Result<Demoted, RouterError> {
    let mine = me.call("/ping", &json!({})).await?;
    let mine = mine["haStatus"].as_str().unwrap_or("");
    if mine != "Master" {
        return Err(RouterError::Unavailable(format!(
            "{} is {mine:?}, not Master: nothing to demote",
            me.base()
        )));
    }
    let answer = peer.call("/syncVpcRouterHa", &json!({})).await?;
    let peer_role = answer["haStatus"].as_str().unwrap_or("").to_string();
    if peer_role != "Master" {
        return Err(RouterError::Unavailable(format!(
            "the peer {} is {:?}, not Master: demoting this half would leave the pair without a master",
            peer.base(),
            peer_role
        )));
    }
    me.call("/restartKeepalived", &json!({})).await?;
    let now = me.call("/ping", &json!({})).await?;
    Ok(Demoted {
        peer: peer_role,
        now: now["haStatus"].as_str().unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_reached_the_way_this_half_is() {
        let spec: RouterSpec = serde_json::from_value(json!({
            "agent": "https://10.0.0.25:7300", "uuid": "a",
            "ha": {"peerIp": "10.0.0.26"}
        }))
        .unwrap();
        assert_eq!(peer_agent(&spec).unwrap(), "https://10.0.0.26:7300");
        let spec: RouterSpec =
            serde_json::from_value(json!({"agent": "http://10.0.0.25:7272", "uuid": "a"})).unwrap();
        assert!(peer_agent(&spec).is_err());
    }
}
