//! Link and route changes through iproute2's `ip`. These run on setup and reload only, never
//! per packet, so a subprocess is simpler and easier to audit than a netlink client.

use std::process::Command;

use crate::DataplaneError;

/// Runs `ip ARGS`, turning a failure into an error that quotes the command and ip's message.
pub fn ip(args: &[&str]) -> Result<(), DataplaneError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| DataplaneError::Ip {
            cmd: args.join(" "),
            reason: format!("cannot run ip: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DataplaneError::Ip {
            cmd: args.join(" "),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Points `prefix` at the TUN device, replacing any route for it. Routes stay installed while a
/// tunnel is down so traffic for the remote site is dropped and counted, never leaked in clear
/// via a default route (fail closed).
pub fn route_via(prefix: &str, dev: &str) -> Result<(), DataplaneError> {
    ip(&["route", "replace", prefix, "dev", dev])
}

pub fn route_del(prefix: &str, dev: &str) -> Result<(), DataplaneError> {
    ip(&["route", "del", prefix, "dev", dev])
}
