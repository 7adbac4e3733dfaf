//! Which sessions a remedy step acts on: a pure function of one snapshot of `pg_stat_activity`
//! (with `pg_blocking_pids` and lock wait times), so every rule is tested without a server.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::event::RemedyAction;

/// One row of the snapshot: a server process as `pg_stat_activity` showed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub pid: i32,
    pub role: Option<String>,
    pub application: Option<String>,
    /// `client backend`, `autovacuum worker`, ...: only client backends are ever signalled.
    pub backend_type: Option<String>,
    pub state: Option<String>,
    /// Since its statement started, its state last changed, its transaction started.
    pub query_ms: Option<u64>,
    pub state_ms: Option<u64>,
    pub xact_ms: Option<u64>,
    /// How long it has waited for a lock (`pg_locks.waitstart`), when it waits for one.
    pub wait_ms: Option<u64>,
    /// `pg_blocking_pids(pid)`: who holds or queues ahead for the lock it waits for.
    pub blocked_by: Vec<i32>,
    /// Its query, cut to 200 characters.
    pub query: Option<String>,
    /// `backend_start`, so a signal cannot reach a later process that reused the pid.
    pub backend_start: Option<String>,
    /// One of sentineld's own connections (the remedy's, the archive's, a probe check's).
    pub own: bool,
}

/// One step as configured, its durations resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: RemedyAction,
    /// `older_than` or `waiting_longer_than`, whichever the action takes.
    pub threshold: Duration,
    pub exclude_roles: Vec<String>,
    pub exclude_applications: Vec<String>,
    pub verify_within: Duration,
}

/// A session the step will signal, and for how long it had been in its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub session: Session,
    pub for_ms: u64,
}

const IDLE_IN_TRANSACTION: [&str; 2] = ["idle in transaction", "idle in transaction (aborted)"];

impl Step {
    /// Never the remedy's own backend, never a server process of PostgreSQL itself, never an
    /// excluded role or application.
    fn may_signal(&self, session: &Session) -> bool {
        let excluded = |value: &Option<String>, list: &[String]| {
            value.as_ref().is_some_and(|v| list.iter().any(|x| x == v))
        };
        !session.own
            && session.backend_type.as_deref() == Some("client backend")
            && !excluded(&session.role, &self.exclude_roles)
            && !excluded(&session.application, &self.exclude_applications)
    }

    /// The sessions this step acts on, by pid; empty when its condition holds for none.
    pub fn targets(&self, sessions: &[Session]) -> Vec<Target> {
        let limit = self.threshold.as_millis() as u64;
        let mut targets: Vec<Target> = match self.action {
            RemedyAction::CancelQueries => sessions
                .iter()
                .filter(|s| s.state.as_deref() == Some("active"))
                .filter_map(|s| Some((s, s.query_ms?)))
                .filter(|(s, ran)| *ran > limit && self.may_signal(s))
                .map(|(s, ran)| Target {
                    session: s.clone(),
                    for_ms: ran,
                })
                .collect(),
            RemedyAction::TerminateIdleInTransaction => sessions
                .iter()
                .filter(|s| {
                    s.state
                        .as_deref()
                        .is_some_and(|state| IDLE_IN_TRANSACTION.contains(&state))
                })
                .filter_map(|s| Some((s, s.state_ms?)))
                .filter(|(s, idle)| *idle > limit && self.may_signal(s))
                .map(|(s, idle)| Target {
                    session: s.clone(),
                    for_ms: idle,
                })
                .collect(),
            RemedyAction::TerminateLockBlockers => self.lock_chain_heads(sessions, limit),
        };
        targets.sort_by_key(|t| t.session.pid);
        targets
    }

    /// The heads of the lock chains that some waiter has waited on longer than `limit`: follow
    /// `blocked_by` from each such waiter to sessions that wait for nobody.
    fn lock_chain_heads(&self, sessions: &[Session], limit: u64) -> Vec<Target> {
        let by_pid: HashMap<i32, &Session> = sessions.iter().map(|s| (s.pid, s)).collect();
        let mut heads = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for waiter in sessions.iter().filter(|s| !s.blocked_by.is_empty()) {
            // waitstart can still be NULL for a moment after the wait began
            let waited = waiter.wait_ms.or(waiter.query_ms).unwrap_or(0);
            if waited <= limit {
                continue;
            }
            let mut stack = waiter.blocked_by.clone();
            while let Some(pid) = stack.pop() {
                if !seen.insert(pid) {
                    continue;
                }
                match by_pid.get(&pid) {
                    Some(blocker) if !blocker.blocked_by.is_empty() => {
                        stack.extend(&blocker.blocked_by)
                    }
                    Some(_) => {
                        heads.insert(pid);
                    }
                    // gone since pg_blocking_pids was read: nothing to signal
                    None => {}
                }
            }
        }
        heads
            .into_iter()
            .filter_map(|pid| by_pid.get(&pid).copied())
            .filter(|s| self.may_signal(s))
            .map(|s| Target {
                session: s.clone(),
                for_ms: held_for(s),
            })
            .collect()
    }
}

/// How long a lock holder has been as it is: idle in its transaction since its state changed,
/// else in its transaction.
fn held_for(session: &Session) -> u64 {
    let idle = session
        .state
        .as_deref()
        .is_some_and(|state| IDLE_IN_TRANSACTION.contains(&state));
    let ms = if idle {
        session.state_ms
    } else {
        session.xact_ms.or(session.query_ms)
    };
    ms.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(pid: i32, state: &str) -> Session {
        Session {
            pid,
            role: Some("app".into()),
            application: Some("web".into()),
            backend_type: Some("client backend".into()),
            state: Some(state.into()),
            ..Session::default()
        }
    }

    fn step(action: RemedyAction, threshold_s: u64) -> Step {
        Step {
            action,
            threshold: Duration::from_secs(threshold_s),
            exclude_roles: vec![],
            exclude_applications: vec![],
            verify_within: Duration::from_secs(10),
        }
    }

    fn pids(targets: &[Target]) -> Vec<i32> {
        targets.iter().map(|t| t.session.pid).collect()
    }

    #[test]
    fn cancel_queries_picks_long_active_statements_only() {
        let mut long = client(1, "active");
        long.query_ms = Some(400_000);
        let mut short = client(2, "active");
        short.query_ms = Some(10_000);
        let mut idle = client(3, "idle");
        idle.query_ms = Some(900_000);
        let mut own = client(4, "active");
        own.query_ms = Some(900_000);
        own.own = true;
        let mut walsender = client(5, "active");
        walsender.query_ms = Some(900_000);
        walsender.backend_type = Some("walsender".into());
        let mut admin = client(6, "active");
        admin.query_ms = Some(900_000);
        admin.role = Some("dba".into());
        let mut backup = client(7, "active");
        backup.query_ms = Some(900_000);
        backup.application = Some("pg_dump".into());
        let sessions = [long, short, idle, own, walsender, admin, backup];
        let mut cancel = step(RemedyAction::CancelQueries, 300);
        assert_eq!(pids(&cancel.targets(&sessions)), [1, 6, 7]);
        cancel.exclude_roles = vec!["dba".into()];
        cancel.exclude_applications = vec!["pg_dump".into()];
        let targets = cancel.targets(&sessions);
        assert_eq!(pids(&targets), [1]);
        assert_eq!(targets[0].for_ms, 400_000);
    }

    #[test]
    fn idle_in_transaction_counts_from_the_state_change() {
        let mut old = client(1, "idle in transaction");
        old.state_ms = Some(700_000);
        old.xact_ms = Some(900_000);
        let mut aborted = client(2, "idle in transaction (aborted)");
        aborted.state_ms = Some(700_000);
        let mut recent = client(3, "idle in transaction");
        recent.state_ms = Some(5_000);
        recent.xact_ms = Some(900_000);
        let mut idle = client(4, "idle");
        idle.state_ms = Some(900_000);
        let targets = step(RemedyAction::TerminateIdleInTransaction, 600)
            .targets(&[old, aborted, recent, idle]);
        assert_eq!(pids(&targets), [1, 2]);
        assert_eq!(targets[0].for_ms, 700_000);
    }

    /// 10 is idle in a transaction holding a lock; 11 waits for 10 and holds a lock 12 waits
    /// for; 20 waits on 21, but not long enough. Only the head of the long chain is picked.
    #[test]
    fn lock_blockers_are_the_heads_of_long_chains() {
        let mut head = client(10, "idle in transaction");
        head.state_ms = Some(720_000);
        head.xact_ms = Some(730_000);
        let mut middle = client(11, "active");
        middle.blocked_by = vec![10];
        middle.wait_ms = Some(5_000);
        let mut tail = client(12, "active");
        tail.blocked_by = vec![11, 10];
        tail.wait_ms = Some(45_000);
        let mut other_head = client(21, "active");
        other_head.xact_ms = Some(100_000);
        let mut short_waiter = client(20, "active");
        short_waiter.blocked_by = vec![21];
        short_waiter.wait_ms = Some(2_000);
        let sessions = [head, middle, tail, other_head, short_waiter];
        let targets = step(RemedyAction::TerminateLockBlockers, 30).targets(&sessions);
        assert_eq!(pids(&targets), [10]);
        assert_eq!(targets[0].for_ms, 720_000, "idle in transaction since");
        // a NULL waitstart falls back to the statement's age
        let mut fresh = sessions.clone();
        fresh[2].wait_ms = None;
        fresh[2].query_ms = Some(60_000);
        assert_eq!(
            pids(&step(RemedyAction::TerminateLockBlockers, 30).targets(&fresh)),
            [10]
        );
    }

    #[test]
    fn an_excluded_or_own_head_is_left_alone_and_cycles_end() {
        let mut head = client(10, "active");
        head.own = true;
        let mut waiter = client(11, "active");
        waiter.blocked_by = vec![10];
        waiter.wait_ms = Some(60_000);
        // a cycle (PostgreSQL's deadlock detector resolves those) has no head
        let mut a = client(30, "active");
        a.blocked_by = vec![31];
        a.wait_ms = Some(60_000);
        let mut b = client(31, "active");
        b.blocked_by = vec![30];
        b.wait_ms = Some(60_000);
        let targets = step(RemedyAction::TerminateLockBlockers, 30).targets(&[head, waiter, a, b]);
        assert!(targets.is_empty(), "{targets:?}");
    }
}
