//! The YAML in crds/ is generated from the Rust types; this test fails when it is stale.
//! Regenerate with `UPDATE_CRDS=1 cargo test --test crds`.

use std::path::PathBuf;

use alexa_skill_operator::crd;

#[test]
fn crds_directory_matches_the_rust_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds");
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for definition in crd::all() {
        let path = dir.join(crd::file_name(&definition));
        let want = crd::to_yaml(&definition).expect("CRD renders");
        if update {
            std::fs::write(&path, &want).expect("write CRD");
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML: {stale:?}; run `UPDATE_CRDS=1 cargo test --test crds` and commit"
    );
}

#[test]
fn crd_names_and_columns_are_what_users_type() {
    let all = crd::all();
    let names: Vec<_> = all
        .iter()
        .map(|c| c.spec.names.short_names.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        vec![
            vec!["sal".to_string()],
            vec!["sen".to_string()],
            vec!["alc".to_string()],
            vec!["calc".to_string()]
        ]
    );
    let plurals: Vec<_> = all.iter().map(|c| c.spec.names.plural.as_str()).collect();
    assert_eq!(
        plurals,
        [
            "skillaccountlinkings",
            "skillenablements",
            "alexacredentials",
            "clusteralexacredentials"
        ]
    );
    for definition in &all {
        assert_eq!(
            definition.spec.names.categories.as_deref(),
            Some(&["alexa".to_string()][..])
        );
        let columns: Vec<_> = definition.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        let first = if definition.spec.names.kind.ends_with("Credentials") {
            ["Secret", "In use"]
        } else {
            ["Skill", "Stage"]
        };
        assert!(columns.starts_with(&first), "{columns:?}");
        assert!(
            columns.ends_with(&["Ready", "Reason", "Age"]),
            "{columns:?}"
        );
    }
}
