//! Reading `ironsecctl status --json` documents.

use serde_json::Value;

/// The first tunnel of connection `conn` in a status document.
pub fn conn_tunnel<'a>(st: &'a Value, conn: &str) -> &'a Value {
    st["connections"]
        .as_array()
        .and_then(|v| v.iter().find(|c| c["name"] == conn))
        .map(|c| &c["tunnels"][0])
        .unwrap_or_else(|| panic!("no connection {conn} in {st:#}"))
}

/// `v[ptr]` as u64, panicking with the whole document when missing.
pub fn num(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("status has no unsigned number at {ptr}: {v:#}"))
}

/// Path of the first tunnel of the first connection in a status document.
pub const T0: &str = "/connections/0/tunnels/0";

/// The first tunnel's `ike` object of a status document, if any.
pub fn ike_of(st: &Value) -> Option<&Value> {
    st.pointer(&format!("{T0}/ike")).filter(|v| !v.is_null())
}

/// The first tunnel has an established IKE SA with at least one CHILD_SA, and SAs installed
/// for both directions.
pub fn tunnel_up(st: &Value) -> bool {
    let Some(ike) = ike_of(st) else { return false };
    ike["state"] == "established"
        && ike["children"].as_u64().unwrap_or(0) >= 1
        && st
            .pointer(&format!("{T0}/outbound"))
            .is_some_and(|v| !v.is_null())
        && st
            .pointer(&format!("{T0}/inbound"))
            .is_some_and(|v| !v.is_null())
}

/// The names of the first connection's active tunnels (`connections[0].active`).
pub fn active_tunnels(st: &Value) -> Vec<String> {
    st["connections"][0]["active"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The first connection's first two tunnels are both `up` (a two-tunnel connection).
pub fn two_tunnels_up(st: &Value) -> bool {
    let t = &st["connections"][0]["tunnels"];
    t[0]["state"] == "up" && t[1]["state"] == "up"
}
