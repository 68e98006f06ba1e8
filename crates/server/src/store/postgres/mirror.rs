//! The PostgreSQL store's copy of users and groups in memory.
//!
//! The hub reads a user (at sign-in, at an invitation) and a group (at a group
//! invitation, a join) by key while it holds its lock. Through PostgreSQL each read
//! would be a network round trip under that lock, so those reads are answered from this
//! copy instead, and never wait for the network. The copy is loaded whole at start-up
//! and kept current by reloading a row: after each of our own writes (so a write is
//! seen at once by the same server), and on every `NOTIFY` the database's triggers send
//! when any client changes a user, a group or a membership (another node, an operator
//! command, `psql`), so others' writes are seen within a notification's delay.
//!
//! Reloads read the row and apply it while holding one lock (`Mirror::reloading`), so
//! an older read can never overwrite a newer one.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, RwLock};

use tincan_protocol::{GroupId, UserId};

use super::super::{GroupRow, UserRow};

/// Users and groups, as last read from the database.
#[derive(Default)]
pub struct Mirror {
    rows: RwLock<Rows>,
    reload: Mutex<()>,
    /// How many changes were applied, for tests that wait for another writer's change.
    applied: Mutex<u64>,
    changed: Condvar,
}

#[derive(Default)]
struct Rows {
    users: HashMap<UserId, UserRow>,
    groups: HashMap<GroupId, GroupRow>,
}

impl Mirror {
    /// One user, if the database had them at the last reload.
    pub fn user(&self, user: &UserId) -> Option<UserRow> {
        self.read().users.get(user).cloned()
    }

    /// One group, if the database had it at the last reload.
    pub fn group(&self, group: &GroupId) -> Option<GroupRow> {
        self.read().groups.get(group).cloned()
    }

    /// The groups `user` is a member of, by id (to reload after deleting the user).
    pub fn groups_with(&self, user: &UserId) -> Vec<GroupId> {
        self.read()
            .groups
            .values()
            .filter(|g| g.members.contains(user))
            .map(|g| g.group_id.clone())
            .collect()
    }

    /// Held while a row is read from the database and applied: reloads happen one at a
    /// time, in the order they read.
    pub fn reloading(&self) -> MutexGuard<'_, ()> {
        self.reload
            .lock()
            .expect("mirror mutex is never poisoned: no panics inside")
    }

    /// Replaces everything (start-up, and after the notification connection is back).
    pub fn replace(&self, users: Vec<UserRow>, groups: Vec<GroupRow>) {
        let mut rows = self.write();
        rows.users = users.into_iter().map(|u| (u.user_id.clone(), u)).collect();
        rows.groups = groups
            .into_iter()
            .map(|g| (g.group_id.clone(), g))
            .collect();
        drop(rows);
        self.applied_one();
    }

    /// Sets (or, with `None`, forgets) one user.
    pub fn set_user(&self, user: &UserId, row: Option<UserRow>) {
        let mut rows = self.write();
        match row {
            Some(r) => rows.users.insert(user.clone(), r),
            None => rows.users.remove(user),
        };
        drop(rows);
        self.applied_one();
    }

    /// Sets (or, with `None`, forgets) one group.
    pub fn set_group(&self, group: &GroupId, row: Option<GroupRow>) {
        let mut rows = self.write();
        match row {
            Some(r) => rows.groups.insert(group.clone(), r),
            None => rows.groups.remove(group),
        };
        drop(rows);
        self.applied_one();
    }

    /// Waits (at most `timeout`) until `done` holds, checking after every change.
    #[cfg(any(test, feature = "test-postgres"))]
    pub fn wait_until(&self, timeout: std::time::Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut applied = self.applied.lock().expect("never poisoned");
        loop {
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            applied = self
                .changed
                .wait_timeout(applied, left)
                .expect("never poisoned")
                .0;
        }
    }

    fn applied_one(&self) {
        *self.applied.lock().expect("never poisoned") += 1;
        self.changed.notify_all();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows
            .read()
            .expect("mirror lock is never poisoned: no panics inside")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rows> {
        self.rows
            .write()
            .expect("mirror lock is never poisoned: no panics inside")
    }
}
