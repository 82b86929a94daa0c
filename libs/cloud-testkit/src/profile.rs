//! `CHATONS_PROFILE=production` must fail closed: the binary is started for real, once with
//! every required variable set (it must get past configuration and listen) and once per
//! required variable with that one empty or absent (it must exit 2 naming it).

use std::process::{Command, Stdio};
use std::time::Duration;

use cloud_common::config::EnvVar;

use crate::process::ServiceProcess;

/// `valid` holds a working value for every variable `vars` marks required in production (plus
/// anything else the binary needs to start here, e.g. a data directory).
pub async fn assert_production_fails_closed(
    binary: &str,
    vars: &[EnvVar],
    valid: &[(&str, String)],
) {
    let required: Vec<&str> = vars
        .iter()
        .filter(|v| v.required_in_production)
        .map(|v| v.name)
        .collect();
    assert!(
        !required.is_empty(),
        "{binary}: no variable is marked required in production"
    );
    for name in &required {
        assert!(
            valid.iter().any(|(k, _)| k == name),
            "{binary}: the test has no valid value for {name}, which is required in production"
        );
    }

    // Positive control: with everything set the binary starts and serves.
    let mut ok = ServiceProcess::spawn(binary, &with_profile(valid.to_vec())).await;
    let health = reqwest::get(format!("{}/healthz", ok.url()))
        .await
        .expect("healthz");
    assert_eq!(
        health.status(),
        200,
        "{binary} with a complete production environment"
    );
    ok.signal("TERM");
    assert!(ok.wait_exit(Duration::from_secs(20)).await.success());

    // Each required variable empty (white space counts as empty) or absent, in turn.
    for name in &required {
        for value in [Some(""), Some("   "), None] {
            let env: Vec<(&str, String)> = valid
                .iter()
                .filter(|(k, _)| k != name)
                .cloned()
                .chain(value.map(|v| (*name, v.to_owned())))
                .collect();
            let (code, stderr) = run_to_exit(binary, &with_profile(env));
            assert_eq!(
                code,
                Some(2),
                "{binary} with {name}={value:?} under the production profile: exit {code:?}, stderr: {stderr}"
            );
            assert!(
                stderr.contains(&format!("invalid configuration: {name}:")),
                "{binary} with {name}={value:?}: stderr does not name it: {stderr}"
            );
            for other in required.iter().filter(|o| *o != name) {
                assert!(
                    !stderr.contains(&format!(": {other}:")),
                    "{binary}: {other} is set but reported: {stderr}"
                );
            }
        }
    }

    // All of them missing at once: one line naming each.
    let (code, stderr) = run_to_exit(
        binary,
        &with_profile(
            valid
                .iter()
                .filter(|(k, _)| !required.contains(k))
                .cloned()
                .collect(),
        ),
    );
    assert_eq!(code, Some(2), "{binary} with nothing set: {stderr}");
    for name in &required {
        assert!(
            stderr.contains(&format!("invalid configuration: {name}:")),
            "{stderr}"
        );
    }

    // Without the profile the same missing variables are accepted (development fallbacks).
    let optional: Vec<(&str, String)> = valid
        .iter()
        .filter(|(k, _)| !required.contains(k))
        .cloned()
        .collect();
    let mut dev = ServiceProcess::spawn(binary, &optional).await;
    dev.signal("TERM");
    assert!(dev.wait_exit(Duration::from_secs(20)).await.success());
}

fn with_profile(mut env: Vec<(&str, String)>) -> Vec<(&str, String)> {
    env.push(("CHATONS_PROFILE", "production".to_owned()));
    env
}

/// Runs `binary serve` with exactly `env` (plus PATH) and returns its exit code and stderr.
fn run_to_exit(binary: &str, env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    // A binary that wrongly gets past configuration would serve forever: bound the wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
