//! The JSONPath subset of `additionalPrinterColumns` (kube's `k8s.io/client-go/util/jsonpath`
//! with missing keys allowed): `.field`, `['field']`, `\.`-escaped dots in names, `[n]` (also
//! negative), `[a:b]`, `[*]`/`.*`, and filters `[?(@.path OP literal)]` (`==`, `!=`, `<`, `<=`,
//! `>`, `>=`) or `[?(@.path)]` (exists), e.g. `.status.conditions[?(@.type=="Ready")].status`.

use serde_json::Value;

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: JsonPath,
    test: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl JsonPath {
    /// Parse `.a.b[?(@.x=="y")].c`; an optional `{...}` wrapper is accepted.
    pub(crate) fn parse(src: &str) -> Result<JsonPath, String> {
        let s = src.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or(s)
            .trim();
        let s = s.strip_prefix('$').unwrap_or(s);
        let chars: Vec<char> = s.chars().collect();
        let mut p = Parser { chars, pos: 0 };
        let path = p.path(false)?;
        if p.pos != p.chars.len() {
            return Err(format!("unexpected {:?} in {src:?}", p.rest()));
        }
        Ok(path)
    }

    /// Every value the path selects in `root` (missing keys select nothing).
    pub(crate) fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![root];
        for seg in &self.0 {
            let mut next = Vec::new();
            for v in cur {
                seg.apply(v, &mut next);
            }
            cur = next;
        }
        cur
    }
}

impl Segment {
    fn apply<'a>(&self, v: &'a Value, out: &mut Vec<&'a Value>) {
        match self {
            Segment::Field(name) => {
                if let Some(x) = v.get(name.as_str()) {
                    out.push(x);
                }
            }
            Segment::Wildcard => match v {
                Value::Object(m) => out.extend(m.values()),
                Value::Array(a) => out.extend(a.iter()),
                _ => {}
            },
            Segment::Index(i) => {
                if let Value::Array(a) = v {
                    let len = a.len() as i64;
                    let idx = if *i < 0 { len + i } else { *i };
                    if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                        out.push(x);
                    }
                }
            }
            Segment::Slice(start, end) => {
                if let Value::Array(a) = v {
                    let len = a.len() as i64;
                    let norm = |x: i64| (if x < 0 { len + x } else { x }).clamp(0, len);
                    let s = start.map_or(0, norm);
                    let e = end.map_or(len, norm);
                    if let (Ok(s), Ok(e)) = (usize::try_from(s), usize::try_from(e))
                        && s < e
                    {
                        out.extend(a[s..e].iter());
                    }
                }
            }
            Segment::Filter(f) => {
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    Value::Object(m) => m.values().collect(),
                    _ => Vec::new(),
                };
                out.extend(items.into_iter().filter(|it| f.matches(it)));
            }
        }
    }
}

impl Filter {
    fn matches(&self, item: &Value) -> bool {
        let found = self.path.find(item);
        match &self.test {
            None => !found.is_empty(),
            Some((op, want)) => match found.as_slice() {
                [got] => compare(got, *op, want),
                _ => false,
            },
        }
    }
}

fn compare(got: &Value, op: Op, want: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (got, want) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ord) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => false,
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn rest(&self) -> String {
        self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .collect()
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .copied()
                .eq(s.chars())
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Segments until the end, or (inside a filter) until an operator or `)`.
    fn path(&mut self, in_filter: bool) -> Result<JsonPath, String> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some('.') => {
                    self.pos += 1;
                    if self.peek() == Some('.') {
                        return Err("recursive descent (..) is not supported".into());
                    }
                    if self.eat("*") {
                        segs.push(Segment::Wildcard);
                    } else {
                        segs.push(Segment::Field(self.name()?));
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    segs.push(self.bracket()?);
                }
                Some(c) if in_filter && (c.is_whitespace() || "=!<>)".contains(c)) => break,
                Some(c) => return Err(format!("unexpected {c:?}")),
            }
        }
        Ok(JsonPath(segs))
    }

    fn name(&mut self) -> Result<String, String> {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            match c {
                '\\' => {
                    self.pos += 1;
                    if let Some(n) = self.peek() {
                        s.push(n);
                        self.pos += 1;
                    }
                }
                '.' | '[' | ']' | '(' | ')' | '=' | '!' | '<' | '>' | ' ' => break,
                _ => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
        if s.is_empty() {
            return Err("empty field name".into());
        }
        Ok(s)
    }

    fn quoted(&mut self) -> Result<String, String> {
        let Some(q) = self.peek().filter(|c| *c == '\'' || *c == '"') else {
            return Err("expected a quoted string".into());
        };
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some('\\') => {
                    self.pos += 1;
                    if let Some(n) = self.peek() {
                        s.push(n);
                        self.pos += 1;
                    }
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        self.skip_ws();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| format!("invalid index {text:?}"))
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        self.skip_ws();
        let seg = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some('\'' | '"') => Segment::Field(self.quoted()?),
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                if !self.eat("(") {
                    return Err("expected ( after ?".into());
                }
                let f = self.filter()?;
                self.skip_ws();
                if !self.eat(")") {
                    return Err("expected ) closing the filter".into());
                }
                Segment::Filter(f)
            }
            _ => {
                let a = self.int()?;
                if self.eat(":") {
                    let b = self.int()?;
                    Segment::Slice(a, b)
                } else {
                    Segment::Index(a.ok_or_else(|| format!("unexpected {:?}", self.rest()))?)
                }
            }
        };
        self.skip_ws();
        if !self.eat("]") {
            return Err("expected ]".into());
        }
        Ok(seg)
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_ws();
        if !self.eat("@") {
            return Err("a filter must start with @".into());
        }
        let path = self.path(true)?;
        self.skip_ws();
        let op = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(s, _)| self.eat(s))
        .map(|(_, op)| op);
        let Some(op) = op else {
            return Ok(Filter { path, test: None });
        };
        self.skip_ws();
        let lit = match self.peek() {
            Some('\'' | '"') => Value::String(self.quoted()?),
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || "-+.".contains(c))
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(|v| v.is_number() || v.is_boolean() || v.is_null())
                    .ok_or_else(|| format!("invalid literal {text:?} in filter"))?
            }
        };
        Ok(Filter {
            path,
            test: Some((op, lit)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::JsonPath;
    use serde_json::json;

    fn find(path: &str, v: &serde_json::Value) -> Vec<serde_json::Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(v)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn fields_indexes_filters() {
        let o = json!({
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "n"}},
            "spec": {"skillId": "s", "n": 3},
            "status": {"conditions": [
                {"type": "Synced", "status": "True", "reason": "A"},
                {"type": "Ready", "status": "False", "reason": "B", "n": 2}
            ]}
        });
        assert_eq!(find(".spec.skillId", &o), [json!("s")]);
        assert_eq!(find("{.spec.n}", &o), [json!(3)]);
        assert_eq!(find(".spec.missing", &o), Vec::<serde_json::Value>::new());
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Ready")].status"#, &o),
            [json!("False")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!='Ready')].reason", &o),
            [json!("A")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n>1)].type", &o),
            [json!("Ready")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n)].type", &o),
            [json!("Ready")]
        );
        assert_eq!(find(".status.conditions[-1].reason", &o), [json!("B")]);
        assert_eq!(find(".status.conditions[0:1].type", &o), [json!("Synced")]);
        assert_eq!(find(".status.conditions[*].type", &o).len(), 2);
        assert_eq!(
            find(r".metadata.labels.app\.kubernetes\.io/name", &o),
            [json!("n")]
        );
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']", &o),
            [json!("n")]
        );
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Nope")].status"#, &o),
            Vec::<serde_json::Value>::new()
        );
        assert!(JsonPath::parse(".a[").is_err());
        assert!(JsonPath::parse("..a").is_err());
        assert!(JsonPath::parse(".a[?(@.b==)]").is_err());
    }
}
