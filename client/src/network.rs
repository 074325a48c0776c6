//! What the operating system says about the network, to tell "no network" from "the server is
//! unreachable" when a connection fails.

use crate::config::ServerUrl;

/// Why the engine is not connected, as far as the OS can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offline {
    /// The OS has no usable network interface.
    NoNetwork,
    /// The network is there, but the server does not answer.
    Unreachable,
}

/// Whether the OS has a network interface that is up and running with a routable address.
///
/// On Unix this reads the interface list (`getifaddrs`); elsewhere the OS is not asked and the
/// answer is always yes, so a failure is reported as an unreachable server.
pub fn os_has_network() -> bool {
    #[cfg(unix)]
    {
        use nix::ifaddrs::getifaddrs;
        use nix::net::if_::InterfaceFlags;
        let Ok(interfaces) = getifaddrs() else {
            return true;
        };
        for interface in interfaces {
            let flags = interface.flags;
            if flags.contains(InterfaceFlags::IFF_LOOPBACK)
                || !flags.contains(InterfaceFlags::IFF_UP)
                || !flags.contains(InterfaceFlags::IFF_RUNNING)
            {
                continue;
            }
            let Some(address) = interface.address else {
                continue;
            };
            if let Some(v4) = address.as_sockaddr_in() {
                if !v4.ip().is_link_local() {
                    return true;
                }
            } else if let Some(v6) = address.as_sockaddr_in6() {
                // fe80::/10 exists on every interface, connected or not.
                if (v6.ip().segments()[0] & 0xffc0) != 0xfe80 {
                    return true;
                }
            }
        }
        false
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Names a failure to reach `server`: a server on this machine is simply unreachable; otherwise
/// the OS's word (`has_network`) decides.
pub fn classify(server: &ServerUrl, has_network: impl FnOnce() -> bool) -> Offline {
    if server.is_loopback() || has_network() {
        Offline::Unreachable
    } else {
        Offline::NoNetwork
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_server_without_network_is_no_network() {
        let remote = ServerUrl::parse("https://exams.example.org").unwrap();
        assert_eq!(classify(&remote, || false), Offline::NoNetwork);
        assert_eq!(classify(&remote, || true), Offline::Unreachable);
    }

    #[test]
    fn a_server_on_this_machine_never_needs_the_network() {
        let local = ServerUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            classify(&local, || panic!("the OS need not be asked")),
            Offline::Unreachable
        );
    }
}
