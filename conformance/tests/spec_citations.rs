//! Every scenario's `spec` cites sections of the project's own protocol documents, `docs/`, in the
//! convention of `docs/README.md`:
//!
//! ```text
//! protocol §6.2, §8.3 notes; vpp-26.10 §9.3
//! ```
//!
//! — citations separated by `; `, each a document's file stem and one or more `§<number>`, each
//! number optionally followed by a short qualifier. A cited document must exist under `docs/`
//! and a cited number must be the number of one of its headings (`## 8.5 Socket close …`). The
//! snapshot lists every scenario with the titles of the headings it cites, so a reviewer sees
//! what each scenario claims to check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rstest::rstest;
use sapi_conformance::scenarios;

/// A parsed citation: a document and the sections cited in it.
#[derive(Debug, PartialEq, Eq)]
struct Citation<'a> {
    doc: &'a str,
    sections: Vec<Section<'a>>,
}

/// One `§<number>[ <qualifier>]` of a citation.
#[derive(Debug, PartialEq, Eq)]
struct Section<'a> {
    number: &'a str,
    /// Free text after the number (`step 2`), empty when there is none.
    qualifier: &'a str,
}

/// Whether `s` is a section number: digits, groups separated by single dots (`8`, `8.5`, `3.2.1`).
fn is_section_number(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a `spec` string by the convention, without looking at the documents.
fn parse(spec: &str) -> Result<Vec<Citation<'_>>, String> {
    if spec.trim().is_empty() {
        return Err("cites nothing".into());
    }
    let mut out = Vec::new();
    for citation in spec.split("; ") {
        if citation.contains(';') {
            return Err(format!(
                "`{citation}`: citations are separated by `; ` (a semicolon and a space)"
            ));
        }
        let Some((doc, rest)) = citation.split_once(' ') else {
            return Err(format!(
                "`{citation}`: no `§<section>` after the document name"
            ));
        };
        if doc.is_empty()
            || !doc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(format!(
                "`{citation}`: `{doc}` is not a document's file stem"
            ));
        }
        let Some(refs) = rest.strip_prefix('§') else {
            return Err(format!(
                "`{citation}`: the document name must be followed by `§<section>`"
            ));
        };
        let pieces: Vec<&str> = refs.split('§').collect();
        let mut sections = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let end = piece
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(piece.len());
            let (number, tail) = piece.split_at(end);
            if !is_section_number(number) {
                return Err(format!(
                    "`{citation}`: `§{number}` is not a section number (digits separated by dots)"
                ));
            }
            if !(tail.is_empty() || tail.starts_with(' ') || tail.starts_with(',')) {
                return Err(format!(
                    "`{citation}`: `§{number}` runs into `{tail}`; a qualifier starts with a space"
                ));
            }
            if i + 1 < pieces.len() && !tail.ends_with(", ") {
                return Err(format!(
                    "`{citation}`: sections of one document are separated by `, §`"
                ));
            }
            sections.push(Section {
                number,
                qualifier: tail.trim().trim_end_matches(',').trim_end(),
            });
        }
        out.push(Citation { doc, sections });
    }
    Ok(out)
}

/// The numbered headings of a document: number → title. Headings inside fenced code blocks do
/// not count.
fn headings(markdown: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let text = line.trim_start_matches('#');
        if in_code || text.len() == line.len() || !text.starts_with(' ') {
            continue;
        }
        let text = text.trim();
        let (number, title) = text.split_once(' ').unwrap_or((text, ""));
        if is_section_number(number) {
            let previous = out.insert(number.to_string(), title.to_string());
            assert!(
                previous.is_none(),
                "two headings numbered {number} in one document"
            );
        }
    }
    out
}

/// The documents of `docs/`, by file stem.
struct Docs {
    dir: PathBuf,
    by_stem: BTreeMap<String, BTreeMap<String, String>>,
}

impl Docs {
    fn load() -> Docs {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let dir = dir.canonicalize().unwrap_or(dir);
        let mut by_stem = BTreeMap::new();
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the protocol documents at {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry of docs/").path();
            if path.extension().is_some_and(|e| e == "md") {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("a UTF-8 file name")
                    .to_string();
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                by_stem.insert(stem, headings(&text));
            }
        }
        Docs { dir, by_stem }
    }

    /// Resolves every section `spec` cites to its heading's title, or says everything that is
    /// wrong with it.
    fn resolve(&self, spec: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut wrong = Vec::new();
        for Citation { doc, sections } in parse(spec)? {
            let Some(headings) = self.by_stem.get(doc) else {
                wrong.push(format!(
                    "cites document `{doc}`, but there is no {}/{doc}.md",
                    self.dir.display()
                ));
                continue;
            };
            for Section { number, qualifier } in sections {
                let Some(title) = headings.get(number) else {
                    wrong.push(format!(
                        "cites {doc} §{number}, but docs/{doc}.md has no heading numbered {number}"
                    ));
                    continue;
                };
                let mut line = format!("{doc} §{number} {title}");
                if !qualifier.is_empty() {
                    line.push_str(&format!(" [{qualifier}]"));
                }
                out.push(line);
            }
        }
        if !wrong.is_empty() {
            return Err(wrong.join("; "));
        }
        if out.is_empty() {
            return Err("cites no section".into());
        }
        Ok(out)
    }
}

#[test]
fn every_scenario_cites_sections_that_exist() {
    let docs = Docs::load();
    let mut failures = Vec::new();
    let mut index = String::new();
    for s in scenarios::all() {
        match docs.resolve(s.spec) {
            Ok(titles) => {
                index.push_str(&format!("{}\n", s.name));
                for t in titles {
                    index.push_str(&format!("    {t}\n"));
                }
            }
            Err(why) => failures.push(format!("{}: spec \"{}\": {why}", s.name, s.spec)),
        }
    }
    assert!(
        failures.is_empty(),
        "scenarios whose spec does not resolve in docs/ (convention: docs/README.md):\n  {}",
        failures.join("\n  ")
    );
    insta::assert_snapshot!("citations", index);
}

#[rstest]
#[case::one_section("protocol §2", &[("protocol", &["2"][..])])]
#[case::sections_with_qualifiers(
    "protocol §6.1 step 3, §9",
    &[("protocol", &["6.1", "9"][..])]
)]
#[case::qualifier_with_a_comma(
    "protocol §1 (one request at a time per socket), §8.1",
    &[("protocol", &["1", "8.1"][..])]
)]
#[case::two_documents(
    "protocol §3.5, §8.6; shm §6.3, §6.5",
    &[("protocol", &["3.5", "8.6"][..]), ("shm", &["6.3", "6.5"][..])]
)]
#[case::dotted_doc_name("vpp-26.10 §9.4", &[("vpp-26.10", &["9.4"][..])])]
#[case::three_levels("protocol §3.2.1", &[("protocol", &["3.2.1"][..])])]
fn parses(#[case] spec: &str, #[case] expected: &[(&str, &[&str])]) {
    let parsed: Vec<(&str, Vec<&str>)> = parse(spec)
        .expect("a valid spec")
        .into_iter()
        .map(|c| (c.doc, c.sections.iter().map(|s| s.number).collect()))
        .collect();
    let expected: Vec<(&str, Vec<&str>)> = expected.iter().map(|(d, s)| (*d, s.to_vec())).collect();
    assert_eq!(parsed, expected);
}

#[rstest]
#[case::none("protocol §8.5", "")]
#[case::step("protocol §8.5 step 2", "step 2")]
#[case::before_the_next_section("protocol §6.1 step 3, §9", "step 3")]
#[case::with_a_comma_inside(
    "protocol §1 (one request, at a time), §8.1",
    "(one request, at a time)"
)]
fn keeps_the_qualifier(#[case] spec: &str, #[case] qualifier: &str) {
    let parsed = parse(spec).expect("a valid spec");
    assert_eq!(parsed[0].sections[0].qualifier, qualifier);
}

/// Each document of `docs/` can be cited by its stem (upcoming `session.*` scenarios cite
/// `sessions`).
#[rstest]
#[case::protocol("protocol §8.5 step 2", &["protocol §8.5 Socket close or error is a crash detach [step 2]"])]
#[case::shm("shm §4.1", &["shm §4.1 Memory image, from the mq offset on"])]
#[case::sessions("sessions §7.5, §12.2 row 6", &["sessions §7.5 Sequence (success)", "sessions §12.2 What a conformance client can observe and check [row 6]"])]
#[case::vpp("vpp-26.10 §9.4", &["vpp-26.10 §9.4 Closing an IS_PROXY app with PROXY_TRANSPORT tcp crashes VPP"])]
fn resolves(#[case] spec: &str, #[case] expected: &[&str]) {
    assert_eq!(
        Docs::load().resolve(spec).expect("a valid citation"),
        expected
    );
}

/// The check catches what a stale or mistyped citation looks like, against the real documents.
#[rstest]
#[case::document_outside_the_repository("sapi-protocol §8.5", "/sapi-protocol.md")]
#[case::section_that_does_not_exist("protocol §99", "no heading numbered 99")]
#[case::subsection_that_does_not_exist("protocol §8.99", "no heading numbered 8.99")]
#[case::second_citation_wrong("protocol §2; shm §42", "no heading numbered 42")]
#[case::heading_name_instead_of_number("vpp-26.10 Defects", "followed by `§<section>`")]
#[case::no_section_at_all("protocol", "no `§<section>`")]
#[case::nothing("", "cites nothing")]
#[case::trailing_dot("protocol §8.", "not a section number")]
#[case::semicolon_without_space("protocol §2;shm §2", "separated by `; `")]
#[case::sections_without_comma("protocol §2 §3", "separated by `, §`")]
#[case::number_running_into_text("protocol §8.5a", "a qualifier starts with a space")]
fn rejects(#[case] spec: &str, #[case] why: &str) {
    match Docs::load().resolve(spec) {
        Ok(titles) => panic!("\"{spec}\" was accepted: {titles:?}"),
        Err(e) => assert!(e.contains(why), "\"{spec}\": expected \"{why}\" in \"{e}\""),
    }
}
