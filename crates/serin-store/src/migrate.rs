//! Versioned, embedded schema migrations.
//!
//! Each backend has its own directory of numbered SQL files compiled into the
//! binary. A table `serin_schema_migrations` records which versions a database has,
//! with a checksum of the SQL that was applied. At start (and on `serin migrate`)
//! the missing versions are applied in order, each in its own transaction. A
//! database that has a version this binary doesn't know, or whose recorded checksum
//! differs from the embedded SQL, is refused: running an old or altered binary
//! against it could corrupt data.

use serde_json::json;

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Sequence number, from 1.
    pub version: i64,
    /// Short name, from the file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

impl Migration {
    /// A stable fingerprint of the SQL (FNV-1a, 64 bits, hex).
    pub fn checksum(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.sql.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// SQLite's migrations, in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "products_releases_signals",
        sql: include_str!("../migrations/sqlite/0001_products_releases_signals.sql"),
    },
    Migration {
        version: 2,
        name: "canary",
        sql: include_str!("../migrations/sqlite/0002_canary.sql"),
    },
    Migration {
        version: 3,
        name: "proxies",
        sql: include_str!("../migrations/sqlite/0003_proxies.sql"),
    },
    Migration {
        version: 4,
        name: "notifications",
        sql: include_str!("../migrations/sqlite/0004_notifications.sql"),
    },
    Migration {
        version: 5,
        name: "release_manager",
        sql: include_str!("../migrations/sqlite/0005_release_manager.sql"),
    },
    Migration {
        version: 6,
        name: "unique_key_names",
        sql: include_str!("../migrations/sqlite/0006_unique_key_names.sql"),
    },
    Migration {
        version: 7,
        name: "secrets",
        sql: include_str!("../migrations/sqlite/0007_secrets.sql"),
    },
    Migration {
        version: 8,
        name: "routes",
        sql: include_str!("../migrations/sqlite/0008_routes.sql"),
    },
    Migration {
        version: 9,
        name: "outside_calls",
        sql: include_str!("../migrations/sqlite/0009_outside_calls.sql"),
    },
    Migration {
        version: 10,
        name: "login_throttle",
        sql: include_str!("../migrations/sqlite/0010_login_throttle.sql"),
    },
];

/// PostgreSQL's migrations, in order.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "products_releases_signals",
        sql: include_str!("../migrations/postgres/0001_products_releases_signals.sql"),
    },
    Migration {
        version: 2,
        name: "canary",
        sql: include_str!("../migrations/postgres/0002_canary.sql"),
    },
    Migration {
        version: 3,
        name: "proxies",
        sql: include_str!("../migrations/postgres/0003_proxies.sql"),
    },
    Migration {
        version: 4,
        name: "notifications",
        sql: include_str!("../migrations/postgres/0004_notifications.sql"),
    },
    Migration {
        version: 5,
        name: "release_manager",
        sql: include_str!("../migrations/postgres/0005_release_manager.sql"),
    },
    Migration {
        version: 6,
        name: "unique_key_names",
        sql: include_str!("../migrations/postgres/0006_unique_key_names.sql"),
    },
    Migration {
        version: 7,
        name: "secrets",
        sql: include_str!("../migrations/postgres/0007_secrets.sql"),
    },
    Migration {
        version: 8,
        name: "routes",
        sql: include_str!("../migrations/postgres/0008_routes.sql"),
    },
    Migration {
        version: 9,
        name: "commit_ordered_feed",
        sql: include_str!("../migrations/postgres/0009_commit_ordered_feed.sql"),
    },
    Migration {
        version: 10,
        name: "leadership",
        sql: include_str!("../migrations/postgres/0010_leadership.sql"),
    },
    Migration {
        version: 11,
        name: "outside_calls",
        sql: include_str!("../migrations/postgres/0011_outside_calls.sql"),
    },
    Migration {
        version: 12,
        name: "login_throttle",
        sql: include_str!("../migrations/postgres/0012_login_throttle.sql"),
    },
    Migration {
        version: 13,
        name: "feed_notify",
        sql: include_str!("../migrations/postgres/0013_feed_notify.sql"),
    },
];

/// What a migration run found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions that were already applied.
    pub already_applied: Vec<i64>,
    /// Versions applied by this run.
    pub applied: Vec<i64>,
    /// The newest version known to this binary.
    pub latest: i64,
}

impl MigrationReport {
    /// A JSON view, for `serin migrate --output json`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({"already_applied": self.already_applied, "applied": self.applied, "latest": self.latest})
    }
}

/// Checks what a database recorded against what the binary embeds; returns the
/// migrations still to apply.
pub(crate) fn plan<'a>(
    known: &'a [Migration],
    recorded: &[(i64, String)],
) -> Result<Vec<&'a Migration>, String> {
    let latest = known.last().map_or(0, |m| m.version);
    for (version, checksum) in recorded {
        match known.iter().find(|m| m.version == *version) {
            None => {
                return Err(format!(
                    "the database has schema version {version}, newer than this binary knows (up to {latest}); use a newer serin"
                ));
            }
            Some(m) if m.checksum() != *checksum => {
                return Err(format!(
                    "schema version {version} ({}) in the database differs from this binary's (checksum {} != {}); the database was migrated by a different build",
                    m.name,
                    checksum,
                    m.checksum()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(known
        .iter()
        .filter(|m| !recorded.iter().any(|(v, _)| *v == m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_ordered() {
        for set in [SQLITE, POSTGRES] {
            for (i, m) in set.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1);
            }
        }
    }

    #[test]
    fn plan_refuses_unknown_and_altered() {
        let m = SQLITE[0];
        assert_eq!(plan(SQLITE, &[]).unwrap().len(), SQLITE.len());
        assert!(plan(SQLITE, &[(1, m.checksum())]).unwrap().len() == SQLITE.len() - 1);
        assert!(
            plan(SQLITE, &[(99, "x".into())])
                .unwrap_err()
                .contains("newer")
        );
        assert!(
            plan(SQLITE, &[(1, "bad".into())])
                .unwrap_err()
                .contains("differs")
        );
    }
}
