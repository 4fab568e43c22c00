//! The command line: `--list` names every scenario with its spec section; a bad glob is a usage
//! error; `--list-expect-fail` prints a file's entries and fails on stale ones; the expect-fail
//! file shipped for VPP names only existing scenarios.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sapi-conformance"))
}

#[test]
fn list_prints_every_scenario_with_its_spec() {
    let out = bin().arg("--list").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf8");
    for name in [
        "transport.socket.mode_0775",
        "attach.reply.fd_order",
        "attach.mq.app",
        "worker.add.bad_app_index",
        "detach.kill.after_attach_sent",
        "fds.send_fds_before_add_segment",
        "malformed.short_208.attached",
        "certkey.add.oversize",
        "namespace.delete_closes_clients",
        "load.attach_concurrent",
        "hygiene.unattached_close",
        "robustness.proxy_tcp_attach_close",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        assert!(line.contains('§'), "{line}");
    }
}

#[test]
fn list_honours_the_filter() {
    let out = bin()
        .args(["--list", "--filter", "worker.*"])
        .output()
        .expect("run");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.lines().count() >= 5);
    assert!(text.lines().all(|l| l.starts_with("worker.")), "{text}");
}

#[test]
fn bad_glob_is_a_usage_error() {
    let out = bin()
        .args(["--list", "--filter", "a[b"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

const VPP_EXPECT_FAIL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/expect-fail/vpp-26.10.toml");

#[test]
fn list_expect_fail_passes_the_shipped_vpp_file() {
    let out = bin()
        .args(["--list-expect-fail", VPP_EXPECT_FAIL])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let xf = sapi_conformance::runner::load_expect_fail(VPP_EXPECT_FAIL.as_ref()).expect("parses");
    assert_eq!(stdout.lines().count(), xf.len(), "{stdout}");
    for (name, reason) in &xf {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name.as_str()) && l.ends_with(reason.as_str())),
            "{name} not listed with its reason:\n{stdout}"
        );
    }
}

#[test]
fn list_expect_fail_warns_about_stale_entries_and_fails() {
    let path = std::env::temp_dir().join(format!("sapi-conf-stale-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[expect-fail]\n\
         \"attach.reply.fd_order\" = \"real\"\n\
         \"attach.reply.fd_ordr\" = \"a typo\"\n\
         \"attach.reply.*\" = \"globs are not expanded\"\n",
    )
    .expect("write");
    let out = bin()
        .arg("--list-expect-fail")
        .arg(&path)
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().count(),
        3,
        "every entry is listed:\n{stdout}"
    );
    for stale in ["\"attach.reply.fd_ordr\"", "\"attach.reply.*\""] {
        assert!(stderr.contains(stale), "no warning for {stale}:\n{stderr}");
    }
    assert!(!stderr.contains("\"attach.reply.fd_order\""), "{stderr}");
    assert!(stderr.contains("2 of 3 entries"), "{stderr}");
}

#[test]
fn list_expect_fail_of_a_bad_file_is_a_usage_error() {
    let out = bin()
        .args(["--list-expect-fail", "/nonexistent/expect-fail.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/expect-fail.toml"));
}

#[test]
fn vpp_expect_fail_file_names_real_scenarios() {
    let xf = sapi_conformance::runner::load_expect_fail(VPP_EXPECT_FAIL.as_ref()).expect("parses");
    let names: Vec<&str> = sapi_conformance::scenarios::all()
        .iter()
        .map(|s| s.name)
        .collect();
    assert!(!xf.is_empty());
    for (k, reason) in &xf {
        assert!(names.contains(&k.as_str()), "{k} is not a scenario");
        assert!(!reason.trim().is_empty());
    }
}

/// `-j` is bounded in one place (`runner::MAX_JOBS`): 0 still runs the scenarios, a huge value
/// is taken down to the bound, and the help states the same bound.
#[test]
fn jobs_are_bounded_by_the_runner_alone() {
    for jobs in ["0", "1000"] {
        let out = bin()
            .args(["--quiet", "--filter", "attach.reply.size", "-j", jobs])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "-j {jobs}:\n{text}");
        assert!(text.contains("1 passed"), "-j {jobs}:\n{text}");
    }
    let help = bin().arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let bound = format!("at most {}", sapi_conformance::runner::MAX_JOBS);
    assert!(
        help.contains(&bound),
        "--help does not say {bound:?}:\n{help}"
    );
}
