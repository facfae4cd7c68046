//! The `generate` binary: its CSV parses back to the library's businesses, and bad
//! command lines fail cleanly with exit code 2.

use nearby_data::{Generator, cities, split_csv_line};
use std::process::{Command, Output};

fn generate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_generate"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Parses the CSV and checks every row against the library.
fn check_against_library(csv: &str, seed: u64, count: usize) {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,name,latitude,longitude,category"));
    let cities = cities().expect("bundled cities");
    let generator = Generator::new(&cities, seed).expect("valid");
    let mut rows = 0;
    for (line, expected) in lines.zip(generator.businesses(count)) {
        let fields = split_csv_line(line).expect("well-formed CSV");
        let [id, name, lat, lon, category] = fields.as_slice() else {
            panic!("5 fields expected: {line:?}");
        };
        assert_eq!(id.parse::<u64>().ok(), Some(expected.id));
        assert_eq!(*name, expected.name);
        for (text, value) in [(lat, expected.latitude), (lon, expected.longitude)] {
            assert_eq!(
                text.split_once('.').map(|(_, frac)| frac.len()),
                Some(6),
                "{line}"
            );
            let parsed: f64 = text.parse().expect("a number");
            assert!((parsed - value).abs() <= 5.000_001e-7, "{line}: {value}");
        }
        assert_eq!(*category, expected.category);
        rows += 1;
    }
    assert_eq!(rows, count);
    assert_eq!(csv.lines().count(), count + 1);
}

#[test]
fn stdout_csv_parses_back() {
    let out = generate(&["--count", "2000", "--seed", "7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_against_library(std::str::from_utf8(&out.stdout).expect("UTF-8"), 7, 2000);
}

#[test]
fn file_output_matches_stdout_across_chunks() {
    // More than one 65,536-row chunk, so the threaded writer has to keep the order.
    let count = 70_000;
    let path = std::env::temp_dir().join(format!("nearby-data-cli-{}.csv", std::process::id()));
    let path_str = path.to_str().expect("UTF-8 temp path");
    let out = generate(&["--seed=3", "--out", path_str, "--count", &count.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).expect("file written");
    let _ = std::fs::remove_file(&path);
    let piped = generate(&["--count", &count.to_string(), "--seed", "3"]);
    assert!(
        written.as_bytes() == piped.stdout.as_slice(),
        "file and stdout differ"
    );
    check_against_library(&written, 3, count);
}

#[test]
fn zero_rows_is_just_the_header() {
    let out = generate(&["--count", "0"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"id,name,latitude,longitude,category\n");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for args in [
        &[][..],
        &["--count"],
        &["--count", "lots"],
        &["--count", "-5"],
        &["--count", "1", "--seed", "1.5"],
        &["--count", "1", "--verbose"],
        &["--count", "1", "--count", "2"],
        &["10"],
    ] {
        let out = generate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("generate: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains("usage:") && !stderr.contains("panicked"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn help_and_unwritable_output() {
    let out = generate(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--count N"));
    let out = generate(&["--count", "5", "--out", "/nonexistent-dir/x.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create"));
}
