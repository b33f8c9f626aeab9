//! Embedded, forward-only migrations: `schemas/sqlite/NNNN_*.sql` and `schemas/postgres/NNNN_*.sql`
//! exist in pairs with the same numbers.

use std::borrow::Cow;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQLite SQL, PostgreSQL SQL)
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "accounts",
        include_str!("../../schemas/sqlite/0001_accounts.sql"),
        include_str!("../../schemas/postgres/0001_accounts.sql"),
    ),
    (
        2,
        "im",
        include_str!("../../schemas/sqlite/0002_im.sql"),
        include_str!("../../schemas/postgres/0002_im.sql"),
    ),
    (
        3,
        "offline_bytes",
        include_str!("../../schemas/sqlite/0003_offline_bytes.sql"),
        include_str!("../../schemas/postgres/0003_offline_bytes.sql"),
    ),
    (
        4,
        "offline_claims",
        include_str!("../../schemas/sqlite/0004_offline_claims.sql"),
        include_str!("../../schemas/postgres/0004_offline_claims.sql"),
    ),
    (
        5,
        "uploads",
        include_str!("../../schemas/sqlite/0005_uploads.sql"),
        include_str!("../../schemas/postgres/0005_uploads.sql"),
    ),
    (
        6,
        "muc",
        include_str!("../../schemas/sqlite/0006_muc.sql"),
        include_str!("../../schemas/postgres/0006_muc.sql"),
    ),
    (
        7,
        "archive",
        include_str!("../../schemas/sqlite/0007_archive.sql"),
        include_str!("../../schemas/postgres/0007_archive.sql"),
    ),
    (
        8,
        "pep",
        include_str!("../../schemas/sqlite/0008_pep.sql"),
        include_str!("../../schemas/postgres/0008_pep.sql"),
    ),
    (
        9,
        "offline_coalesce",
        include_str!("../../schemas/sqlite/0009_offline_coalesce.sql"),
        include_str!("../../schemas/postgres/0009_offline_coalesce.sql"),
    ),
    (
        10,
        "inbox",
        include_str!("../../schemas/sqlite/0010_inbox.sql"),
        include_str!("../../schemas/postgres/0010_inbox.sql"),
    ),
    (
        11,
        "muc_nicks",
        include_str!("../../schemas/sqlite/0011_muc_nicks.sql"),
        include_str!("../../schemas/postgres/0011_muc_nicks.sql"),
    ),
    (
        12,
        "pep_subscriptions",
        include_str!("../../schemas/sqlite/0012_pep_subscriptions.sql"),
        include_str!("../../schemas/postgres/0012_pep_subscriptions.sql"),
    ),
];

/// Which dialect.
#[derive(Clone, Copy)]
pub enum Dialect {
    /// SQLite
    Sqlite,
    /// PostgreSQL
    Postgres,
}

/// The migrator for one dialect.
pub fn migrator(dialect: Dialect) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, desc, lite, pg)| {
                let sql = match dialect {
                    Dialect::Sqlite => lite,
                    Dialect::Postgres => pg,
                };
                Migration::new(
                    version,
                    Cow::Borrowed(desc),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}
