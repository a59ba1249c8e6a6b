//! `[client_ip]`: the trusted proxies and the global IP allow/deny lists.

use super::nets;
use crate::config::raw::RawClientIp;
use crate::config::{ClientIpConfig, Problems};
use crate::policy::client_ip::IpRules;

/// `[client_ip]`: every entry an IP address or a CIDR network.
pub(super) fn client_ip(p: &mut Problems, raw: &RawClientIp) -> ClientIpConfig {
    ClientIpConfig {
        trusted_proxies: nets(p, "client_ip.trusted_proxies", &raw.trusted_proxies),
        rules: IpRules { allow: nets(p, "client_ip.allow", &raw.allow), deny: nets(p, "client_ip.deny", &raw.deny) },
    }
}
