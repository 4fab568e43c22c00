//! The JSON and JUnit reports of a fixed run: an insta snapshot of the JSON (timings redacted) and
//! the JUnit XML read back by a real XML parser.

use quick_xml::Reader;
use quick_xml::events::Event;
use sapi_conformance::report::{Report, ScenarioResult, Status, human, junit};
use sapi_conformance::wire::Profile;

fn result(name: &str, status: Status, reason: Option<&str>, evidence: &[&str]) -> ScenarioResult {
    ScenarioResult {
        name: name.into(),
        spec: "protocol §3.2".into(),
        summary: format!("checks {name}"),
        status,
        duration_ms: 17,
        reason: reason.map(Into::into),
        evidence: evidence.iter().map(|s| s.to_string()).collect(),
    }
}

fn sample() -> Report {
    Report::new(
        "embedded reference at /tmp/x/app_ns_sockets/default".into(),
        Profile::Head,
        1234,
        vec![
            result("attach.reply.size", Status::Pass, None, &[]),
            result(
                "attach.reply.fd_order",
                Status::Fail,
                None,
                &[
                    "fd kinds: expected [memfd (mqs segment), memfd (app segment), eventfd], observed [memfd \"seg-1-0-0\" (16789504 bytes, ino 7), eventfd, memfd \"session: wrk-mqs-segment\" (1368064 bytes, ino 3)]",
                ],
            ),
            result(
                "fds.send_fds_before_add_segment",
                Status::Skip,
                Some("needs --segment-add-cmd"),
                &[],
            ),
            result(
                "hygiene.unattached_close",
                Status::ExpectedFail,
                Some("VPP leaks unbound sockets <&>"),
                &["4 sockets: before 10 fds; after 14 fds"],
            ),
            result(
                "certkey.del.preallocated",
                Status::UnexpectedPass,
                Some("VPP lets pair 0 go"),
                &["expected to fail (VPP lets pair 0 go) but passed"],
            ),
        ],
    )
}

#[test]
fn json_report_snapshot() {
    let v: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("valid JSON");
    for s in v["scenarios"].as_array().expect("scenarios array") {
        for key in ["name", "status", "spec", "duration_ms", "evidence"] {
            assert!(s.get(key).is_some(), "scenario lacks {key}: {s}");
        }
    }
    insta::assert_json_snapshot!(v, {
        ".duration_ms" => "[ms]",
        ".scenarios[].duration_ms" => "[ms]",
        ".version" => "[version]",
    });
}

#[test]
fn gate_fails_only_on_unexpected_failures() {
    let r = sample();
    assert!(!r.gate_passed());
    let mut ok = sample();
    ok.scenarios.retain(|s| s.status != Status::Fail);
    let ok = Report::new(ok.target, ok.profile, 0, ok.scenarios);
    assert!(
        ok.gate_passed(),
        "xfail, xpass and skip do not fail the gate"
    );
    let text = human::render(&r);
    assert!(text.contains(
        "FAILED: 1 passed, 1 failed, 1 skipped, 1 expected failures, 1 unexpected passes"
    ));
    assert!(text.contains("XPASS certkey.del.preallocated"));
}

/// Walks the JUnit XML with quick-xml: every testcase with its outcome element.
#[test]
fn junit_is_well_formed_and_complete() {
    let xml = junit::render(&sample());
    let mut reader = Reader::from_str(&xml);
    reader.config_mut().trim_text(true);
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut suites = 0;
    let mut root_attrs = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let attrs: Vec<(String, String)> = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("attribute");
                        (
                            a.key.into_inner().to_string(),
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .expect("unescape")
                                .into_owned(),
                        )
                    })
                    .collect();
                let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                match e.name().into_inner() {
                    "testsuites" => root_attrs = attrs.clone(),
                    "testsuite" => suites += 1,
                    "testcase" => cases.push((get("name").expect("name"), "pass".into())),
                    "failure" => {
                        cases.last_mut().expect("case").1 =
                            format!("failure: {}", get("message").unwrap_or_default())
                    }
                    "skipped" => {
                        cases.last_mut().expect("case").1 =
                            format!("skipped: {}", get("message").unwrap_or_default())
                    }
                    _ => {}
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "JUnit XML does not parse at {}: {e}\n{xml}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(
        suites, 4,
        "one testsuite per area (attach, fds, hygiene, certkey)"
    );
    assert!(root_attrs.contains(&("tests".into(), "5".into())));
    assert!(root_attrs.contains(&("failures".into(), "1".into())));
    let by: std::collections::HashMap<_, _> = cases.into_iter().collect();
    assert_eq!(by["attach.reply.size"], "pass");
    assert!(by["attach.reply.fd_order"].starts_with("failure: fd kinds: expected"));
    assert_eq!(
        by["fds.send_fds_before_add_segment"],
        "skipped: needs --segment-add-cmd"
    );
    assert_eq!(
        by["hygiene.unattached_close"],
        "skipped: expected failure: VPP leaks unbound sockets <&>"
    );
    assert_eq!(by["certkey.del.preallocated"], "pass");
}
