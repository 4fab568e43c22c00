//! JUnit XML as CI systems read it (Jenkins/GitLab flavour): one `<testsuite>` per area (the
//! first dot-separated part of a name), `<failure>` with the evidence, `<skipped>` with the reason.
//! Expected failures are written as skipped (with the expect-fail reason) so they do not fail the
//! CI; unexpected passes are passing test cases with a `<system-out>` note.
//!
//! Written with `quick-xml`'s [`Writer`], which owns escaping. Must never: emit a character XML
//! 1.0 forbids even escaped (evidence quotes bytes a target sent, e.g. a memfd name), so every
//! string goes through `xml_chars` first.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::{Report, ScenarioResult, Status};

/// `s` with every character outside XML 1.0's `Char` production replaced by `?`: C0 controls
/// other than tab, newline and carriage return, and U+FFFE/U+FFFF (surrogates cannot occur in a
/// `str`).
fn xml_chars(s: &str) -> Cow<'_, str> {
    let forbidden = |c: char| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    };
    if s.chars().any(forbidden) {
        Cow::Owned(
            s.chars()
                .map(|c| if forbidden(c) { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The report as a JUnit XML document (UTF-8, two-space indent, trailing newline).
pub fn render(r: &Report) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_report(&mut w, r).expect("writing XML into a Vec<u8> cannot fail");
    let mut out = String::from_utf8_lossy(&w.into_inner()).into_owned();
    out.push('\n');
    out
}

fn write_report(w: &mut Writer<Vec<u8>>, r: &Report) -> io::Result<()> {
    let mut areas: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
    for s in &r.scenarios {
        areas
            .entry(s.name.split('.').next().unwrap_or(""))
            .or_default()
            .push(s);
    }
    let count =
        |v: &[&ScenarioResult], f: fn(Status) -> bool| v.iter().filter(|s| f(s.status)).count();
    let profile = r.profile.to_string();
    let target = xml_chars(&r.target);

    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites")
        .with_attributes([
            ("name", "sapi-conformance"),
            ("tests", &r.summary.total.to_string()),
            ("failures", &r.summary.failed.to_string()),
            (
                "skipped",
                &(r.summary.skipped + r.summary.expected_failures).to_string(),
            ),
            ("time", &secs(r.duration_ms)),
        ])
        .write_inner_content(|w| {
            for (area, list) in &areas {
                let area = xml_chars(area);
                let time: u64 = list.iter().map(|s| s.duration_ms).sum();
                w.create_element("testsuite")
                    .with_attributes([
                        ("name", area.as_ref()),
                        ("tests", &list.len().to_string()),
                        ("failures", &count(list, |s| s == Status::Fail).to_string()),
                        ("errors", "0"),
                        (
                            "skipped",
                            &count(list, |s| matches!(s, Status::Skip | Status::ExpectedFail))
                                .to_string(),
                        ),
                        ("time", &secs(time)),
                    ])
                    .write_inner_content(|w| {
                        w.create_element("properties").write_inner_content(|w| {
                            for (name, value) in
                                [("profile", profile.as_str()), ("target", &target)]
                            {
                                w.create_element("property")
                                    .with_attributes([("name", name), ("value", value)])
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                        for s in list {
                            write_case(w, &area, s)?;
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, area: &str, s: &ScenarioResult) -> io::Result<()> {
    let classname = format!("sapi-conformance.{area}");
    let name = xml_chars(&s.name);
    let time = secs(s.duration_ms);
    let case = w.create_element("testcase").with_attributes([
        ("classname", classname.as_str()),
        ("name", &name),
        ("time", &time),
    ]);
    let joined = s.evidence.join("\n");
    let evidence = xml_chars(&joined);
    match s.status {
        Status::Pass => {
            case.write_empty()?;
        }
        Status::Fail => {
            let first = xml_chars(s.evidence.first().map(String::as_str).unwrap_or("failed"));
            let body = xml_chars(&format!("{} ({})\n{joined}", s.summary, s.spec)).into_owned();
            case.write_inner_content(|w| {
                w.create_element("failure")
                    .with_attributes([("message", first.as_ref()), ("type", "nonconformance")])
                    .write_text_content(BytesText::new(&body))?;
                Ok(())
            })?;
        }
        Status::Skip | Status::ExpectedFail => {
            let why = s.reason.as_deref().unwrap_or_default();
            let msg = if s.status == Status::ExpectedFail {
                format!("expected failure: {why}")
            } else {
                why.to_string()
            };
            case.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", xml_chars(&msg).as_ref()))
                    .write_empty()?;
                if !s.evidence.is_empty() {
                    w.create_element("system-out")
                        .write_text_content(BytesText::new(&evidence))?;
                }
                Ok(())
            })?;
        }
        Status::UnexpectedPass => {
            case.write_inner_content(|w| {
                w.create_element("system-out")
                    .write_text_content(BytesText::new(&format!("UNEXPECTED PASS: {evidence}")))?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_become_question_marks() {
        assert_eq!(xml_chars("a\u{1}b\tc\n\u{ffff}"), "a?b\tc\n?");
        assert!(matches!(xml_chars("plain <&>"), Cow::Borrowed(_)));
    }
}
