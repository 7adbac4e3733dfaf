//! Who is on the other end of the socket (SO_PEERCRED) and whether they may change things:
//! root, or a member of the socket's group. Reads are open to anyone who can open the socket.

use nix::unistd::{Gid, Group, Uid, User};
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// Looks up users and groups; behind a trait so the rule is tested without /etc/group.
pub trait Accounts: Send + Sync {
    fn user_name(&self, uid: u32) -> Option<String>;
    fn group_name(&self, gid: u32) -> Option<String>;
    /// All groups of the user (primary and supplementary), from the account database.
    fn groups_of(&self, uid: u32, primary_gid: u32) -> Vec<u32>;
}

/// The host's account database (NSS).
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user_name(&self, uid: u32) -> Option<String> {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
    }

    fn group_name(&self, gid: u32) -> Option<String> {
        Group::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name)
    }

    fn groups_of(&self, uid: u32, primary_gid: u32) -> Vec<u32> {
        let Some(user) = User::from_uid(Uid::from_raw(uid)).ok().flatten() else {
            return vec![primary_gid];
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return vec![primary_gid];
        };
        nix::unistd::getgrouplist(&name, Gid::from_raw(primary_gid))
            .map(|groups| groups.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_else(|_| vec![primary_gid])
    }
}

/// A peer that may not call mutating routes (403), named as the account database names it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("permission denied: {user} is neither root nor a member of group {group} — add your user to group {group}")]
pub struct Denied {
    /// `alice (uid 1000)`, or `uid 1000` for an unknown user.
    pub user: String,
    /// The socket's group: `sentinel`, or `gid 900` for an unknown group.
    pub group: String,
}

/// Allow `peer` to call mutating routes on a socket owned by `socket_gid`, or say why not.
pub fn authorize(peer: &Peer, socket_gid: u32, accounts: &dyn Accounts) -> Result<(), Denied> {
    if peer.uid == 0
        || peer.gid == socket_gid
        || accounts.groups_of(peer.uid, peer.gid).contains(&socket_gid)
    {
        return Ok(());
    }
    let user = accounts.user_name(peer.uid).map_or_else(
        || format!("uid {}", peer.uid),
        |n| format!("{n} (uid {})", peer.uid),
    );
    let group = accounts
        .group_name(socket_gid)
        .unwrap_or_else(|| format!("gid {socket_gid}"));
    Err(Denied { user, group })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeAccounts;

    impl Accounts for FakeAccounts {
        fn user_name(&self, uid: u32) -> Option<String> {
            match uid {
                1000 => Some("alice".into()),
                1001 => Some("bob".into()),
                _ => None,
            }
        }
        fn group_name(&self, gid: u32) -> Option<String> {
            (gid == 900).then(|| "sentinel".into())
        }
        fn groups_of(&self, uid: u32, primary: u32) -> Vec<u32> {
            match uid {
                1000 => vec![primary, 900],
                _ => vec![primary],
            }
        }
    }

    #[test]
    fn authorize_table() {
        let peer = |uid, gid| Peer {
            uid,
            gid,
            pid: Some(42),
        };
        let cases = [
            ("root", peer(0, 0), 900, Ok(())),
            ("supplementary member", peer(1000, 1000), 900, Ok(())),
            ("primary group is the socket group", peer(1001, 900), 900, Ok(())),
            (
                "not a member",
                peer(1001, 1001),
                900,
                Err("permission denied: bob (uid 1001) is neither root nor a member of group sentinel — add your user to group sentinel"),
            ),
            (
                "unknown user and group",
                peer(4242, 4242),
                77,
                Err("permission denied: uid 4242 is neither root nor a member of group gid 77 — add your user to group gid 77"),
            ),
        ];
        for (label, peer, socket_gid, expected) in cases {
            let got = authorize(&peer, socket_gid, &FakeAccounts).map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(String::from), "{label}");
        }
    }
}
