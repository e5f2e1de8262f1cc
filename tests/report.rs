//! The whole pipeline on generated data (quick mode): every section, table and
//! image of the report is there, and report.html is well-formed and self-contained.

use shallow::data::RawData;
use shallow::pipeline::experiment::{run_all, AllOptions};
use shallow::sweep::RunnerOptions;
use shallow::train::Control;
use shallow::ui::DisplayMode;

fn generated() -> RawData {
    shallow::data::generated::cifar10(1000, 11)
}

#[test]
fn experiment_all_writes_a_complete_report() {
    let data = generated();
    let dir = tempfile::tempdir().unwrap();
    let runner = RunnerOptions {
        jobs: 2,
        threads: 2,
        max_group: 8,
        out: dir.path().to_path_buf(),
        data_dir: "generated".into(),
        guard: true,
        force: true,
        draw: Some(shallow::report::run_pictures),
        ..Default::default()
    };
    let opts = AllOptions {
        seed: 1,
        quick: true,
        runner,
        mode: DisplayMode::Quiet,
    };
    let (md, html) = run_all(&data, &opts, &Control::new())
        .unwrap()
        .expect("not interrupted");
    let text = std::fs::read_to_string(&html).unwrap();
    let xml = text.replace("<!DOCTYPE html>", "");
    let doc = roxmltree::Document::parse(&xml).expect("well-formed HTML");
    let texts = |tag: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag))
            .map(|n| {
                n.descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .collect()
            })
            .collect()
    };
    let h2 = texts("h2");
    assert_eq!(
        h2[0], "Summary",
        "the report opens with its summary: {h2:?}"
    );
    for want in [
        "Gradient checks",
        "Assignment 1",
        "Assignment 2",
        "Coarse-to-fine lambda search",
        "Environment",
    ] {
        assert!(
            h2.iter().any(|h| h.starts_with(want)),
            "section {want} missing: {h2:?}"
        );
    }
    let tables = doc
        .descendants()
        .filter(|n| n.has_tag_name("table"))
        .count();
    // Summary + 4 gradient checks + A1 + A2 + final + coarse + fine + 2 environment tables.
    assert_eq!(tables, 12, "tables");
    let images: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("img"))
        .filter_map(|n| n.attribute("src"))
        .collect();
    // A1: 4 runs x (curves + weights); A2: 2 curves; the search's summary.png; the best final run's curves.
    assert_eq!(images.len(), 12, "images");
    assert!(
        images
            .iter()
            .all(|s| s.starts_with("data:image/png;base64,") && s.len() > 1000),
        "embedded PNGs"
    );
    assert!(!text.contains("missing image"));
    // The gradient checks passed and the accuracies are numbers, not placeholders.
    assert!(!text.contains("<strong>FAIL</strong>"));
    let cells = texts("td");
    assert!(
        cells.iter().filter(|c| *c == "pass").count() >= 10,
        "gradient check rows"
    );
    // The summary rows: 4 A1 runs, 2 A2 runs, the search, with references.
    assert!(cells.iter().any(|c| c == "39.1%") && cells.iter().any(|c| c == "51.5-52%"));
    assert!(
        text.len() < 1_000_000,
        "report.html is {} bytes",
        text.len()
    );
    let md_text = std::fs::read_to_string(&md).unwrap();
    assert!(md_text.contains("![") && md_text.contains("a1/a1_lambda0.1_eta0.001/weights.png"));
    // `shallow report` rebuilds the same page from the files alone.
    let before = text.clone();
    shallow::report::build::build(dir.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&html).unwrap(), before);
}
