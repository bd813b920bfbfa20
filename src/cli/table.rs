//! Plain text tables: a header row and aligned columns separated by two spaces, the layout
//! of `kubectl get` and `docker ps`.
//!
//! Written here rather than taken from a crate (`comfy-table`, `tabled`): the CLI needs only
//! borderless, left/right aligned columns whose output stays greppable and stable for
//! scripts, which is forty lines; those crates bring borders, styling, terminal-width probing
//! and their dependencies, none of which sluicectl wants.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left, so digits line up.
    Right,
}

/// A column heading and its alignment.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Shown in the header row (conventionally upper case).
    pub header: &'static str,
    /// Alignment of the header and the cells.
    pub align: Align,
}

impl Column {
    /// A left-aligned (text) column.
    pub const fn left(header: &'static str) -> Column {
        Column {
            header,
            align: Align::Left,
        }
    }

    /// A right-aligned (numeric) column.
    pub const fn right(header: &'static str) -> Column {
        Column {
            header,
            align: Align::Right,
        }
    }
}

/// Rows of cells under fixed columns, rendered with each column as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[Column]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row. Missing trailing cells render empty; extra cells are a bug.
    ///
    /// # Panics
    /// When the row has more cells than the table has columns.
    pub fn add_row(&mut self, cells: Vec<String>) {
        assert!(
            cells.len() <= self.columns.len(),
            "row has {} cells for {} columns",
            cells.len(),
            self.columns.len()
        );
        self.rows.push(cells);
    }

    /// Number of rows (header excluded).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: the header line, then one line per row, each ending in '\n', with no
    /// trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|c| c.header.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<&str> = self.columns.iter().map(|c| c.header).collect();
        self.render_line(&mut out, &widths, &headers);
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            self.render_line(&mut out, &widths, &cells);
        }
        out
    }

    fn render_line(&self, out: &mut String, widths: &[usize], cells: &[&str]) {
        let mut line = String::new();
        for (index, (column, width)) in self.columns.iter().zip(widths).enumerate() {
            let cell = cells.get(index).copied().unwrap_or("");
            if index > 0 {
                line.push_str("  ");
            }
            let padding = width - cell.chars().count();
            match column.align {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', padding));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', padding));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Renders `key: value` lines with the values aligned, for single-object views
/// (`service get`, `status`).
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(key, _)| key.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in fields {
        let label = format!("{key}:");
        out.push_str(format!("{label:<width$}  {value}").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&[Column::left("NAME"), Column::right("PORT")]);
        table.add_row(vec!["web".into(), "80".into()]);
        table.add_row(vec!["dns-over-tcp".into(), "53".into()]);
        table.add_row(vec!["x".into(), "65535".into()]);
        assert_eq!(
            table.render(),
            "NAME           PORT\n\
             web              80\n\
             dns-over-tcp     53\n\
             x             65535\n"
        );
    }

    #[test]
    fn trailing_spaces_are_trimmed_and_missing_cells_are_empty() {
        let mut table = Table::new(&[
            Column::left("A"),
            Column::left("LONG-HEADER"),
            Column::left("C"),
        ]);
        table.add_row(vec!["1".into()]);
        table.add_row(vec!["2".into(), "b".into(), "c".into()]);
        let text = table.render();
        assert_eq!(text, "A  LONG-HEADER  C\n1\n2  b            c\n");
        assert!(text.lines().all(|line| !line.ends_with(' ')));
    }

    #[test]
    fn an_empty_table_renders_its_header() {
        let table = Table::new(&[Column::left("NAME"), Column::right("PORT")]);
        assert!(table.is_empty());
        assert_eq!(table.render(), "NAME  PORT\n");
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut table = Table::new(&[Column::left("K"), Column::left("V")]);
        table.add_row(vec!["é".into(), "1".into()]);
        table.add_row(vec!["ab".into(), "2".into()]);
        assert_eq!(table.render(), "K   V\né   1\nab  2\n");
    }

    #[test]
    #[should_panic(expected = "row has 3 cells for 2 columns")]
    fn too_many_cells_is_a_bug() {
        let mut table = Table::new(&[Column::left("A"), Column::left("B")]);
        table.add_row(vec!["1".into(), "2".into(), "3".into()]);
    }

    #[test]
    fn fields_align_their_values() {
        let text = render_fields(&[("Name", "web".into()), ("Selection", "maglev".into())]);
        assert_eq!(text, "Name:       web\nSelection:  maglev\n");
    }
}
