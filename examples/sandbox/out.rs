//! Output: every demo line goes to stdout at once, prefixed with the time since start, so a
//! newcomer (or the test reading the pipe line by line) sees progress as it happens rather than
//! at the end. Operator logs go to stderr and never interleave with these lines.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Set by [`section`], taken by the table view: after narration the column header is repeated
/// so the rows that follow stay readable.
static NEED_HEADER: AtomicBool = AtomicBool::new(true);

/// Starts the clock that prefixes every line.
pub fn start_clock() {
    START.get_or_init(Instant::now);
}

fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// A progress line, timestamped.
pub fn line(text: impl AsRef<str>) {
    raw(&format!("[{:>5.1}s] {}", elapsed(), text.as_ref()));
}

/// A line as is (banner, summary). Flushed at once because stdout may be a pipe.
pub fn raw(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Starts a demo step: a blank line and a title.
pub fn section(title: impl AsRef<str>) {
    raw("");
    line(format!("== {}", title.as_ref()));
    NEED_HEADER.store(true, Ordering::SeqCst);
}

/// Whether the table header must be printed before the next row (clears the flag).
pub fn take_header() -> bool {
    NEED_HEADER.swap(false, Ordering::SeqCst)
}

/// Quotes a word for a POSIX shell only when needed, so printed commands paste as they are.
pub fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
