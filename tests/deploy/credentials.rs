//! No real credentials anywhere we ship.

use std::path::{Path, PathBuf};

use crate::{repo, samples};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn shipped_files_hold_only_placeholder_credentials() {
    let mut files = Vec::new();
    files_under(&repo().join("deploy"), &mut files);
    for extra in ["Dockerfile", "docs/OPERATIONS.md", "tests/e2e-kind.sh"] {
        files.push(repo().join(extra));
    }
    // Shapes of real Login with Amazon values: client IDs, client secrets, refresh and access
    // tokens. Placeholders never look like these.
    let real_shapes = [
        "amzn1.application-oa2-client.",
        "amzn1.oa2-cs.",
        "Atzr|IwEB",
        "Atza|",
    ];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for shape in real_shapes {
            assert!(
                !text.contains(shape),
                "{} contains something shaped like a real LWA credential ({shape}…)",
                file.display()
            );
        }
    }
    for secret in samples().iter().filter(|o| o["kind"] == "Secret") {
        for (key, value) in secret["stringData"].as_object().expect("stringData") {
            let value = value.as_str().expect("string value");
            let placeholder = value.contains("sandbox")
                || value.contains("example")
                || value.ends_with(|c: char| c.is_ascii_digit())
                    && value.contains("-partner-code-");
            assert!(
                placeholder,
                "sample Secret {}: {key} must be an obvious placeholder, not {value:?}",
                secret["metadata"]["name"]
            );
        }
    }
}
