//! `poslens import clearing` and `poslens reconcile` end to end: a generated scenario's platform
//! side imported as JSON Lines, its clearing files as canonical CSV, and the run compared with
//! the scenario's ground truth.

use std::path::{Path, PathBuf};

use recon::scenario::{generate, ScenarioRates};
use serde_json::Value;

use super::poslens;

#[allow(dead_code)]
#[path = "../../examples/recon-scenario-files.rs"]
mod scenario_files;

const DATE: &str = "2026-11-25";

/// Imports the scenario (platform side, then every clearing file) into `data`; returns the
/// clearing files and the expected summary.
fn import_scenario(data: &Path, cases: usize, seed: u64) -> (Vec<PathBuf>, Value) {
    let s = generate(seed, cases, &ScenarioRates::default());
    let dir = data.join("scenario");
    let files = scenario_files::write_scenario(&dir, &s).unwrap();
    let jsonl = dir.join("platform.jsonl");
    let (ok, out, err) = poslens(data, &["import", "transactions", "--create-missing", jsonl.to_str().unwrap()], None);
    assert!(ok, "import transactions: {out}{err}");
    for f in &files {
        let (ok, out, err) = poslens(data, &["import", "clearing", f.to_str().unwrap()], None);
        assert!(ok, "import clearing {}: {out}{err}", f.display());
        assert!(out.contains("imported"), "{out}");
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (files, expected)
}

fn reconcile_json(data: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["reconcile", "--date", DATE, "--json"];
    args.extend_from_slice(extra);
    let (ok, out, err) = poslens(data, &args, None);
    assert!(ok, "reconcile: {out}{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("--json must print only JSON ({e}): {out}"))
}

#[test]
fn reconcile_of_an_imported_scenario_matches_its_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (files, expected) = import_scenario(data, 600, 11);
    let items = data.join("items.csv");
    let summary = reconcile_json(data, &["--items", items.to_str().unwrap()]);
    assert_eq!(summary["counts"], expected["counts"], "{summary}");
    assert_eq!(summary["pending_channels"], expected["pending_channels"]);
    assert_eq!(summary["settlement_date"], DATE);
    assert!(summary["run_id"].as_i64().unwrap() > 0);
    let keys: Vec<&String> = summary.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "only run_id, settlement_date, counts, amounts, pending_channels: {keys:?}");

    let csv = std::fs::read_to_string(&items).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "outcome,match_pass,merchant_id,terminal_id,batch_no,stan,rrn,external_ref,platform_amount,clearing_amount,platform_id,clearing_file,clearing_line"
    );
    let total: u64 = expected["counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(lines.clone().count() as u64, total);
    // A missing_in_platform item names the file and its physical line (header = line 1).
    let mip = lines.find(|l| l.starts_with("missing_in_platform,")).expect("scenario has a missing_in_platform item");
    let cols: Vec<&str> = mip.split(',').collect();
    assert!(cols[11].starts_with("clearing-") && cols[12].parse::<u64>().unwrap() >= 2, "{mip}");
    assert!(cols[10].is_empty(), "no platform id: {mip}");

    // The same file again is refused; --replace supersedes it and the run comes out the same.
    let card = files.iter().find(|f| f.to_string_lossy().contains(&format!("card-{DATE}"))).unwrap();
    let (ok, _, err) = poslens(data, &["import", "clearing", card.to_str().unwrap()], None);
    assert!(!ok, "a second import of the same file must be refused");
    assert!(err.contains("imported before") && err.contains("--replace"), "{err}");
    let (ok, out, err) = poslens(data, &["import", "clearing", "--replace", card.to_str().unwrap()], None);
    assert!(ok && out.contains("superseding import #"), "{out}{err}");
    let again = reconcile_json(data, &[]);
    assert_eq!(again["counts"], expected["counts"]);
    assert!(again["run_id"].as_i64() > summary["run_id"].as_i64());

    // --dry-run records nothing.
    let dry = reconcile_json(data, &["--dry-run"]);
    assert_eq!(dry["run_id"], Value::Null);
    assert_eq!(dry["counts"], expected["counts"]);
}

#[test]
fn a_bad_amount_refuses_the_file_naming_the_line_and_allow_partial_writes_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let s = generate(5, 40, &ScenarioRates::default());
    let files = scenario_files::write_scenario(&data.join("scenario"), &s).unwrap();
    let card = files.iter().find(|f| f.to_string_lossy().contains(&format!("card-{DATE}"))).unwrap();
    let text = std::fs::read_to_string(card).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Line 4 of the file (index 3): amount is column 10.
    let mut cols: Vec<String> = lines[3].split(',').map(str::to_owned).collect();
    cols[9] = "12.345".into();
    lines[3] = cols.join(",");
    let bad = data.join("bad-card.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();

    let (ok, _, err) = poslens(data, &["import", "clearing", bad.to_str().unwrap()], None);
    assert!(!ok, "a bad amount must refuse the file");
    assert!(err.contains("line 4") && err.contains("12.345") && err.contains("nothing was imported"), "{err}");
    let (_, out, _) = poslens(data, &["reconcile", "--date", DATE, "--json", "--dry-run"], None);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["counts"]["missing_in_platform"], 0, "nothing of the refused file was kept: {v}");

    let (ok, out, err) = poslens(data, &["import", "clearing", "--allow-partial", bad.to_str().unwrap()], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 bad rows left out"), "{out}");
    let rejects = std::fs::read_to_string(data.join("bad-card.csv.rejects.csv")).unwrap();
    assert!(rejects.starts_with("line,column,value,reason\n4,\"amount\",\"12.345\","), "{rejects}");
}
