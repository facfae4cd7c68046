//! A minimal RFC 4180 record splitter and quoter for single-line records.
//!
//! Not the `csv` crate (which the service uses for uploaded place files), on purpose: this
//! parser's contract is strict and per line — a stray quote, an unterminated quote or a blank
//! line is an error naming its line (`tests/cities.rs`) — where the `csv` crate accepts stray
//! quotes, skips blank lines and lets an unterminated quote run on into the next lines. The
//! quoter is what `generate` writes its rows with, a field at a time into a shared row
//! buffer, so its bytes (pinned per seed) and speed stay as they are.

/// Splits one CSV line into fields. Fields may be wrapped in double quotes, inside which
/// commas are literal and `""` stands for one `"`. Line breaks inside fields are not
/// supported (the callers split lines first). Returns a message on malformed quoting.
pub(crate) fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::with_capacity(8);
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".to_owned()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("stray '\"' inside an unquoted field".to_owned()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// Appends `field` to `out`, quoted only if it contains a comma, a quote or a line break.
pub(crate) fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        for c in field.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_and_quoted() {
        assert_eq!(
            split_record("a,b,,c"),
            Ok(vec!["a".into(), "b".into(), String::new(), "c".into()])
        );
        assert_eq!(
            split_record(r#"1,"x, ""y""",z"#),
            Ok(vec!["1".into(), r#"x, "y""#.into(), "z".into()])
        );
        assert_eq!(split_record(r#""a""#), Ok(vec!["a".into()]));
        assert_eq!(split_record(""), Ok(vec![String::new()]));
        assert_eq!(split_record("a,"), Ok(vec!["a".into(), String::new()]));
    }

    #[test]
    fn rejects_bad_quoting() {
        assert!(split_record(r#""abc"#).is_err());
        assert!(split_record(r#""a"b,c"#).is_err());
        assert!(split_record(r#"a"b,c"#).is_err());
    }

    #[test]
    fn quote_round_trips() {
        for s in ["plain", "a, b", r#"say "hi""#, "", "Ñuñoa, Santiago"] {
            let mut line = String::new();
            push_field(&mut line, s);
            line.push_str(",tail");
            assert_eq!(
                split_record(&line),
                Ok(vec![s.to_owned(), "tail".to_owned()])
            );
        }
    }
}
