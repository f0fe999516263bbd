//! [`Sql`]: the statements of a write batch, built from static fragments
//! and bound values.
//!
//! The writer runs a batch as a sequence of statements. Their text is made
//! only of fixed fragments (`&'static str`); every value goes through a
//! typed method that writes a `?` placeholder into the text and keeps the
//! value to bind to it. No value can change a statement's structure, and
//! since a statement's text depends only on the op's shape, the writer's
//! connection reuses its prepared statements instead of parsing each
//! batch again.

use std::ops::Range;

use rusqlite::types::Value;

use crate::error::{Error, Result};

/// SQL text made of static fragments, with the values bound to its `?`s.
pub(super) struct Sql {
    text: String,
    values: Vec<Value>,
}

/// One statement of a batch: its text and the range of the batch's values
/// bound to its placeholders, in order.
pub(super) struct Statement<'a> {
    pub text: &'a str,
    pub values: &'a [Value],
}

impl Sql {
    pub(super) fn new() -> Sql {
        Sql {
            text: String::with_capacity(2048),
            values: Vec::with_capacity(32),
        }
    }

    /// A fixed fragment of SQL: only `'static` text, never a value.
    pub(super) fn raw(&mut self, fragment: &'static str) -> &mut Sql {
        self.text.push_str(fragment);
        self
    }

    fn value(&mut self, v: Value) -> &mut Sql {
        self.text.push('?');
        self.values.push(v);
        self
    }

    /// A text value. NUL is refused: the store never holds one, and a
    /// reader of the column would stop there.
    pub(super) fn text(&mut self, v: &str) -> Result<&mut Sql> {
        if v.contains('\0') {
            return Err(Error::internal(
                "refusing a NUL character in a stored value",
            ));
        }
        Ok(self.value(Value::Text(v.to_owned())))
    }

    pub(super) fn opt_text(&mut self, v: Option<&str>) -> Result<&mut Sql> {
        match v {
            Some(v) => self.text(v),
            None => Ok(self.value(Value::Null)),
        }
    }

    pub(super) fn int(&mut self, v: i64) -> &mut Sql {
        self.value(Value::Integer(v))
    }

    pub(super) fn opt_int(&mut self, v: Option<i64>) -> &mut Sql {
        self.value(v.map_or(Value::Null, Value::Integer))
    }

    pub(super) fn bool(&mut self, v: bool) -> &mut Sql {
        self.int(i64::from(v))
    }

    pub(super) fn blob(&mut self, v: &[u8]) -> &mut Sql {
        self.value(Value::Blob(v.to_vec()))
    }

    /// The statements, split at each `;` outside a quoted literal or
    /// identifier, each with the values of its placeholders. An error if
    /// the placeholders and the values do not match one for one.
    pub(super) fn statements(&self) -> Result<Vec<Statement<'_>>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut first_value = 0;
        let mut placeholders = 0;
        let mut quote: Option<u8> = None;
        let mut push = |range: Range<usize>, values: Range<usize>| -> Result<()> {
            let text = self.text[range].trim();
            if text.is_empty() {
                if values.is_empty() {
                    return Ok(());
                }
                return Err(Error::internal(
                    "database batch: a value outside a statement",
                ));
            }
            let values = self
                .values
                .get(values)
                .ok_or_else(|| Error::internal("database batch: more placeholders than values"))?;
            out.push(Statement { text, values });
            Ok(())
        };
        for (i, b) in self.text.bytes().enumerate() {
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => quote = Some(b),
                (None, b'?') => placeholders += 1,
                (None, b';') => {
                    push(start..i + 1, first_value..first_value + placeholders)?;
                    start = i + 1;
                    first_value += placeholders;
                    placeholders = 0;
                }
                (None, _) => {}
            }
        }
        push(
            start..self.text.len(),
            first_value..first_value + placeholders,
        )?;
        if quote.is_some() {
            return Err(Error::internal("database batch: an unterminated quote"));
        }
        if first_value + placeholders != self.values.len() {
            return Err(Error::internal(
                "database batch: more values than placeholders",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_written_into_the_text() {
        let mut s = Sql::new();
        s.raw("INSERT INTO t VALUES (")
            .text("it's; DROP TABLE orders; --")
            .unwrap()
            .raw(", ")
            .int(-5)
            .raw(", ")
            .blob(&[0, 0xab])
            .raw(", ")
            .opt_text(None)
            .unwrap()
            .raw(", 'a;b?');\nUPDATE t SET x = ")
            .bool(true)
            .raw(";\nSELECT 1;\n");
        let st = s.statements().unwrap();
        assert_eq!(st.len(), 3);
        assert_eq!(st[0].text, "INSERT INTO t VALUES (?, ?, ?, ?, 'a;b?');");
        assert_eq!(
            st[0].values,
            [
                Value::Text("it's; DROP TABLE orders; --".into()),
                Value::Integer(-5),
                Value::Blob(vec![0, 0xab]),
                Value::Null,
            ]
        );
        assert_eq!(st[1].text, "UPDATE t SET x = ?;");
        assert_eq!(st[1].values, [Value::Integer(1)]);
        assert_eq!(st[2].text, "SELECT 1;");
        assert!(st[2].values.is_empty());
        assert!(Sql::new().text("nul\0byte").is_err());
    }

    #[test]
    fn a_placeholder_without_its_value_is_refused() {
        let mut s = Sql::new();
        s.raw("UPDATE t SET x = ?;");
        assert!(s.statements().is_err());
        let mut s = Sql::new();
        s.raw("UPDATE t SET x = 'unterminated;");
        assert!(s.statements().is_err());
    }
}
