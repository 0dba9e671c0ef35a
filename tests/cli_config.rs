//! `fledge config check` on the example configs, as a user runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

const FLEDGE: &str = env!("CARGO_BIN_EXE_fledge");

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_file_under_configs_passes_config_check() {
    let paths = configs();
    assert!(
        paths.iter().any(|p| p.ends_with("rollout-haproxy.yaml")),
        "{paths:?}"
    );
    for path in paths {
        let out = Command::new(FLEDGE)
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("ok: "), "{}: {stdout}", path.display());
    }
}

#[test]
fn a_bad_hook_fails_config_check_naming_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("fledge-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/rollout-haproxy.yaml"),
    )
    .unwrap();
    let bad = text.replacen("type: confirm_promotion", "type: confirm_promotoin", 1);
    assert_ne!(bad, text);
    let path = dir.join("bad.yaml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(FLEDGE)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = text
        .lines()
        .position(|l| l.contains("type: confirm_promotion"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!(
            "bad.yaml:{line}: rollout.hooks[2].type: unknown variant `confirm_promotoin`"
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
