//! README.md stays true: its copy of the example configuration is the
//! file, the file is valid, and the set-up commands it gives exist.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

#[test]
fn readme_shows_the_example_configuration_verbatim() {
    let readme = read("README.md");
    let example = read("examples/switchyard.toml");
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "README.md's copy of examples/switchyard.toml is out of date"
    );
}

#[test]
fn the_example_configuration_is_valid() {
    let example = read("examples/switchyard.toml");
    if let Err(errors) = switchyard::config::parse(&example, "examples/switchyard.toml") {
        panic!("{errors:?}");
    }
}

#[test]
fn the_set_up_commands_exist() {
    let readme = read("README.md");
    for script in ["tools/run.sh", "tools/test.sh"] {
        assert!(
            readme.contains(script),
            "README.md does not mention {script}"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path)
                .expect("the script exists")
                .permissions(),
        );
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
}
