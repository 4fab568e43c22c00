//! Who is on the other end of a socket, and who may connect.
//!
//! Owns the peer credentials the kernel reports (`SO_PEERCRED`) and the opt-in access policy; VPP
//! itself lets anyone who can open the socket file in.
//!
//! Must never: ask the kernel for credentials (the shell reads `SO_PEERCRED` and hands them in), or
//! refuse a peer when neither list is set: the policy is opt-in, as VPP checks nothing.

/// The credentials of a socket's peer as the kernel reported them (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerCred {
    /// Peer process id.
    pub pid: i32,
    /// Peer user id.
    pub uid: u32,
    /// Peer group id.
    pub gid: u32,
}

/// Peer credentials allowed to connect. Empty lists allow everyone, as VPP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Uids allowed (`--allow-uid`).
    pub allow_uids: Vec<u32>,
    /// Gids allowed (`--allow-gid`).
    pub allow_gids: Vec<u32>,
}

impl AccessPolicy {
    /// Whether a peer with these credentials may connect.
    pub fn allows(&self, peer: &PeerCred) -> bool {
        (self.allow_uids.is_empty() && self.allow_gids.is_empty())
            || self.allow_uids.contains(&peer.uid)
            || self.allow_gids.contains(&peer.gid)
    }
}
