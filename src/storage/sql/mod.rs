//! The SQL both databases share. Each store is written once, as a macro over the concrete
//! `sqlx::Database`, and instantiated in `sqlite/` and `postgres/`: the queries use `$N`
//! placeholders, which both drivers bind by number, and only portable SQL (`ON CONFLICT`,
//! `RETURNING`). Dialect differences live in the paired migrations under `schemas/`.

mod account;
pub(crate) mod archive;
mod documents;
pub(crate) mod inbox;
pub(crate) mod muc;
pub(crate) mod offline;
pub(crate) mod pep;
mod roster;
mod uploads;
