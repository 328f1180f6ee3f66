//! Loopback ports.

/// A loopback port nothing listens on now: for an address that must be known before the process
/// listening on it starts (a node's URL written into its identity or the demo's credentials, a
/// WebDriver server). A node that may pick its own port is better started on `127.0.0.1:0`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_free_port_can_be_bound() {
        let port = super::free_port();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
