//! Count-then-page, once: every list of the API answers one page of rows and
//! how many rows match in all.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::Result;
use crate::canary::{Paged, Window};

use super::pg_err;

/// One page of `{select} {filter} ORDER BY {order}`, with how many rows the
/// filter matches in all. `filter` is a `WHERE` clause (or empty) whose
/// placeholders `$1`…`$n` take `args`; the page's limit and offset are bound
/// after them. Both run on one connection (not in one snapshot: a row
/// committed in between may be counted and not listed, as with any pager).
pub(crate) async fn paged<T>(
    c: &impl GenericClient,
    select: &str,
    filter: &str,
    order: &str,
    args: &[&(dyn ToSql + Sync)],
    w: Window,
    row: impl FnMut(&Row) -> Result<T>,
) -> Result<Paged<T>> {
    let total: i64 = c
        .query_one(
            &format!("SELECT COUNT(*) FROM ({select} {filter}) AS matching"),
            args,
        )
        .await
        .map_err(pg_err)?
        .get(0);
    let (limit, offset) = (w.limit as i64, w.offset as i64);
    let mut all = args.to_vec();
    all.extend([&limit as &(dyn ToSql + Sync), &offset]);
    let n = args.len();
    let stmt = c
        .prepare_cached(&format!(
            "{select} {filter} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ))
        .await
        .map_err(pg_err)?;
    let items = c
        .query(&stmt, &all)
        .await
        .map_err(pg_err)?
        .iter()
        .map(row)
        .collect::<Result<_>>()?;
    Ok(Paged {
        items,
        total: total as u64,
    })
}
