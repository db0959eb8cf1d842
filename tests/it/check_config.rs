//! `renewd check-config` against fixture files: exit codes and messages that name
//! the line and field.

use std::path::Path;

use crate::fixture::run_renewd;

#[test]
fn every_broken_fixture_is_rejected_with_a_message_naming_the_problem() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: no `# expect:` lines",
            path.display()
        );
        let run = run_renewd(&path, &["check-config"]);
        assert_eq!(run.code, 2, "{}: {run:?}", path.display());
        assert!(run.stderr.contains(&path.display().to_string()), "{run:?}");
        for want in expected {
            assert!(
                run.stderr.contains(want),
                "{}: missing {want:?} in {run:?}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn shipped_default_config_is_valid_and_summarised() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/renewd.toml");
    let run = run_renewd(&path, &["check-config"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("ok (0 CA(s), 0 solver(s), 0 certificate(s))"),
        "{run:?}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let run = run_renewd(Path::new("/nonexistent/renewd.toml"), &["check-config"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/renewd.toml: cannot read"),
        "{run:?}"
    );
}

#[test]
fn commands_that_need_a_config_refuse_an_invalid_one_with_exit_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid/unknown-key.toml");
    for cmd in [&["status"][..], &["renew", "--all"]] {
        let run = run_renewd(&dir, cmd);
        assert_eq!(run.code, 2, "{cmd:?}: {run:?}");
        assert!(run.stderr.contains("max_concurent"), "{run:?}");
    }
    // The daemon too, so systemd does not restart it in a loop
    // (RestartPreventExitStatus=2), here for a group that does not exist.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid/solver-keys-and-group.toml");
    let run = run_renewd(&path, &["run"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("daemon.control_group"), "{run:?}");
}
