//! Count-then-page, once: every list of the API answers one page of rows and
//! how many rows match in all.

use rusqlite::{Connection, Row, ToSql};

use crate::Result;
use crate::canary::{Paged, Window};

use super::sql_err;

/// One page of `{select} {filter} ORDER BY {order}`, with how many rows the
/// filter matches in all. `filter` is a `WHERE` clause (or empty) whose
/// placeholders `?1`…`?n` take `args`; the page's limit and offset are bound
/// after them. Both statements are cached prepared statements.
pub(crate) fn paged<T>(
    c: &Connection,
    select: &str,
    filter: &str,
    order: &str,
    args: &[&dyn ToSql],
    w: Window,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Paged<T>> {
    let total: i64 = c
        .prepare_cached(&format!("SELECT COUNT(*) FROM ({select} {filter})"))
        .and_then(|mut s| s.query_row(args, |r| r.get(0)))
        .map_err(sql_err)?;
    let (limit, offset) = (w.limit as i64, w.offset as i64);
    let mut all = args.to_vec();
    all.extend([&limit as &dyn ToSql, &offset]);
    let n = args.len();
    let items = c
        .prepare_cached(&format!(
            "{select} {filter} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        ))
        .and_then(|mut s| s.query_map(&*all, row)?.collect())
        .map_err(sql_err)?;
    Ok(Paged {
        items,
        total: total as u64,
    })
}
