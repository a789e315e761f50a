//! Printing answers: aligned tables for people, JSON for scripts.

use serde::Serialize;
use serin_core::{Product, Release, Signal};

use crate::cli::Output;

/// Something that prints as table rows.
pub trait Tabular {
    /// The column titles.
    const HEADERS: &'static [&'static str];
    /// One row's cells.
    fn row(&self) -> Vec<String>;
}

fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl Tabular for Product {
    const HEADERS: &'static [&'static str] = &["NAME", "DESCRIPTION", "CREATED"];
    fn row(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.description.clone().unwrap_or_default(),
            when(&self.created_at),
        ]
    }
}

impl Tabular for Release {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "PRODUCT",
        "VERSION",
        "STATUS",
        "RELEASED",
        "DESCRIPTION",
    ];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.product_name.clone(),
            self.version.clone(),
            self.status.to_string(),
            self.released_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "-".into()),
            self.description.clone().unwrap_or_default(),
        ]
    }
}

impl Tabular for Signal {
    const HEADERS: &'static [&'static str] =
        &["ID", "RELEASE", "LANE", "NAME", "KIND", "VALUE", "TIME"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            format!("{}@{}", self.product_name, self.version),
            self.lane.to_string(),
            self.name.clone(),
            self.kind.as_str().to_string(),
            self.value.to_string(),
            when(&self.timestamp),
        ]
    }
}

/// Formats rows as aligned columns (no trailing spaces).
pub fn table<T: Tabular>(items: &[T]) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(Tabular::row).collect();
    let mut widths: Vec<usize> = T::HEADERS.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(T::HEADERS.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

/// Prints one item or a list in the chosen format.
pub fn print<T: Tabular + Serialize>(
    output: Output,
    items: &[T],
    single: bool,
) -> anyhow::Result<()> {
    match output {
        Output::Json if single && items.len() == 1 => {
            println!("{}", serde_json::to_string_pretty(&items[0])?)
        }
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"items": items}))?
        ),
        Output::Table => println!("{}", table(items)),
    }
    Ok(())
}
