//! [`Sql`]: the text of a write batch, built from static fragments and
//! quoted values.
//!
//! The writer runs a batch as one SQL text, so values are written into it
//! as literals. The only way to add a value is a typed method that quotes
//! it: text with `'` doubled and NUL refused (SQLite string literals have
//! no other escape), integers formatted, blobs as hex. Fixed fragments must
//! be `&'static str`. No value can change a statement's structure.

use crate::error::{Error, Result};

/// SQL text built from static fragments and quoted values.
pub(super) struct Sql(String);

impl Sql {
    pub(super) fn new() -> Sql {
        Sql(String::with_capacity(4096))
    }

    /// A fixed fragment of SQL: only `'static` text, never a value.
    pub(super) fn raw(&mut self, fragment: &'static str) -> &mut Sql {
        self.0.push_str(fragment);
        self
    }

    /// A text value as a string literal.
    pub(super) fn text(&mut self, v: &str) -> Result<&mut Sql> {
        if v.contains('\0') {
            return Err(Error::internal(
                "refusing a NUL character in a stored value",
            ));
        }
        self.0.reserve(v.len() + 2);
        self.0.push('\'');
        for ch in v.chars() {
            if ch == '\'' {
                self.0.push('\'');
            }
            self.0.push(ch);
        }
        self.0.push('\'');
        Ok(self)
    }

    pub(super) fn opt_text(&mut self, v: Option<&str>) -> Result<&mut Sql> {
        match v {
            Some(v) => self.text(v),
            None => Ok(self.raw("NULL")),
        }
    }

    pub(super) fn int(&mut self, v: i64) -> &mut Sql {
        self.0.push_str(&v.to_string());
        self
    }

    pub(super) fn opt_int(&mut self, v: Option<i64>) -> &mut Sql {
        match v {
            Some(v) => self.int(v),
            None => self.raw("NULL"),
        }
    }

    pub(super) fn bool(&mut self, v: bool) -> &mut Sql {
        self.raw(if v { "1" } else { "0" })
    }

    pub(super) fn blob(&mut self, v: &[u8]) -> &mut Sql {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.reserve(v.len() * 2 + 3);
        self.0.push_str("X'");
        for b in v {
            self.0.push(char::from(HEX[usize::from(b >> 4)]));
            self.0.push(char::from(HEX[usize::from(b & 15)]));
        }
        self.0.push('\'');
        self
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted() {
        let mut s = Sql::new();
        s.raw("SELECT ")
            .text("it's; DROP TABLE orders; --")
            .unwrap()
            .raw(", ")
            .int(-5)
            .raw(", ")
            .blob(&[0, 0xab])
            .raw(", ")
            .opt_text(None)
            .unwrap();
        assert_eq!(
            s.into_string(),
            "SELECT 'it''s; DROP TABLE orders; --', -5, X'00ab', NULL"
        );
        assert!(Sql::new().text("nul\0byte").is_err());
    }
}
