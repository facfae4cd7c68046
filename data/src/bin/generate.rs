//! `generate`: writes synthetic businesses as CSV.
//!
//! ```text
//! generate --count N [--seed S] [--out FILE]
//! ```
//!
//! Output columns: `id,name,latitude,longitude,category`, a header line first, coordinates
//! with 6 decimals, names quoted RFC 4180 style when they contain a comma or a quote.
//! Exit codes: 0 success, 1 runtime failure (I/O), 2 bad command line.

use nearby_data::{Generator, cities, push_csv_field};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::process::ExitCode;
use std::sync::mpsc;

const USAGE: &str = "\
usage: generate --count N [--seed S] [--out FILE]

Writes N synthetic businesses clustered around GeoNames cities as CSV
(id,name,latitude,longitude,category) to FILE, or to standard output.

  --count N    number of businesses (required)
  --seed S     64-bit seed, default 42; the same seed gives the same bytes
  --out FILE   output file, default standard output ('-' also means stdout)
  -h, --help   show this help";

/// The command line (clap derive; `--help` prints [`USAGE`]).
#[derive(Debug, clap::Parser)]
#[command(name = "generate", override_help = USAGE, disable_version_flag = true)]
struct Args {
    /// Number of businesses.
    #[arg(long)]
    count: u64,
    /// 64-bit seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file; standard output when absent or `-`.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    out: Option<String>,
}

/// Parses the command line; `Ok(None)` means help was asked for, `Err` carries clap's
/// one-line reason.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    use clap::Parser as _;
    let argv = std::iter::once("generate".to_owned()).chain(args);
    match Args::try_parse_from(argv) {
        Ok(mut args) => {
            args.out = args.out.filter(|o| o != "-");
            Ok(Some(args))
        }
        Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelp => Ok(None),
        Err(err) => {
            // clap's first line ("error: ..."), without its own usage lines: USAGE follows.
            let text = err.render().to_string();
            let reason = text.lines().next().unwrap_or("bad command line");
            Err(reason.strip_prefix("error: ").unwrap_or(reason).to_owned())
        }
    }
}

/// Rows formatted per work unit.
const CHUNK: u64 = 1 << 16;

/// Writes the header and `count` rows. Chunks of rows are generated and formatted on up
/// to four threads and written in id order, so the bytes do not depend on the thread
/// count.
fn write_csv(generator: &Generator, count: u64, out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"id,name,latitude,longitude,category\n")?;
    let chunks = count.div_ceil(CHUNK);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4)) as u64;
    let threads = threads.min(chunks).max(1);
    let chunk_rows = |c: u64| c * CHUNK..((c + 1) * CHUNK).min(count);
    if threads == 1 {
        for c in 0..chunks {
            out.write_all(format_rows(generator, chunk_rows(c)).as_bytes())?;
        }
        return out.flush();
    }
    std::thread::scope(|scope| {
        let mut receivers = Vec::new();
        for first in 0..threads {
            let (sender, receiver) = mpsc::sync_channel::<String>(2);
            receivers.push(receiver);
            scope.spawn(move || {
                for c in (first..chunks).step_by(threads as usize) {
                    // The receiver is gone only when writing failed: stop quietly.
                    if sender.send(format_rows(generator, chunk_rows(c))).is_err() {
                        return;
                    }
                }
            });
        }
        for receiver in receivers.iter().cycle().take(chunks as usize) {
            let rows = receiver
                .recv()
                .map_err(|_| io::Error::other("a worker thread died"))?;
            out.write_all(rows.as_bytes())?;
        }
        out.flush()
        // Leaving the closure drops the receivers, so workers blocked on a send return.
    })
}

/// The CSV rows of the businesses with ids in `ids`.
fn format_rows(generator: &Generator, ids: Range<u64>) -> String {
    let mut rows = String::with_capacity(64 * (ids.end - ids.start) as usize);
    for b in generator.businesses_range(ids) {
        push_uint(&mut rows, b.id);
        rows.push(',');
        push_csv_field(&mut rows, &b.name);
        rows.push(',');
        push_fixed6(&mut rows, b.latitude);
        rows.push(',');
        push_fixed6(&mut rows, b.longitude);
        rows.push(',');
        rows.push_str(b.category);
        rows.push('\n');
    }
    rows
}

/// Appends `n` in decimal.
fn push_uint(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// Appends `x` (a coordinate, |x| <= 180) with exactly 6 decimals: `x * 1e6` rounded half
/// away from zero. Integer digit formatting after one IEEE multiplication, so it is both
/// fast and identical on every machine; no "-0.000000".
fn push_fixed6(out: &mut String, x: f64) {
    let micro = (x * 1e6).round();
    // |micro| <= 1.8e8 for coordinates; the cast saturates for anything wilder.
    let micro = micro as i64;
    if micro < 0 {
        out.push('-');
    }
    let micro = micro.unsigned_abs();
    push_uint(out, micro / 1_000_000);
    out.push('.');
    let frac = micro % 1_000_000;
    let mut divisor = 100_000;
    while divisor > 0 {
        out.push(char::from(b'0' + ((frac / divisor) % 10) as u8));
        divisor /= 10;
    }
}

fn run(args: &Args) -> Result<(), String> {
    let cities = cities().map_err(|e| format!("bundled cities: {e}"))?;
    let generator = Generator::new(&cities, args.seed).map_err(|e| e.to_string())?;
    let result = match &args.out {
        Some(path) => {
            let file = File::create(path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
            write_csv(
                &generator,
                args.count,
                &mut BufWriter::with_capacity(1 << 20, file),
            )
        }
        None => write_csv(
            &generator,
            args.count,
            &mut BufWriter::with_capacity(1 << 20, io::stdout().lock()),
        ),
    };
    match result {
        // A closed pipe (`generate ... | head`) is a normal way to stop reading.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| format!("write failed: {e}")),
    }
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("generate: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("generate: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_flags() {
        let a = parse(&["--count", "10", "--seed=7", "--out", "x.csv"]);
        let a = a.ok().flatten().expect("valid");
        assert_eq!((a.count, a.seed, a.out.as_deref()), (10, 7, Some("x.csv")));
        let a = parse(&["--count=3", "--out", "-"])
            .ok()
            .flatten()
            .expect("valid");
        assert_eq!((a.count, a.seed, a.out), (3, 42, None));
        assert!(matches!(parse(&["--help"]), Ok(None)));
    }

    fn fixed6(x: f64) -> String {
        let mut s = String::new();
        push_fixed6(&mut s, x);
        s
    }

    #[test]
    fn formats_coordinates_like_std() {
        for x in [
            0.0,
            -0.0,
            1.5,
            -1.5,
            180.0,
            -180.0,
            90.0,
            12.345_678_9,
            -0.000_000_4,
            0.000_000_6,
        ] {
            let expected = format!("{x:.6}");
            let expected = if expected == "-0.000000" {
                "0.000000".to_owned()
            } else {
                expected
            };
            assert_eq!(fixed6(x), expected, "{x}");
        }
        let mut rng = nearby_data::SplitMix64::new(1);
        for _ in 0..10_000 {
            let x = rng.next_f64() * 360.0 - 180.0;
            let ours: f64 = fixed6(x).parse().unwrap_or(f64::NAN);
            assert!((ours - x).abs() <= 5.000_001e-7, "{x}");
        }
        let mut s = String::new();
        push_uint(&mut s, 0);
        s.push(' ');
        push_uint(&mut s, u64::MAX);
        assert_eq!(s, "0 18446744073709551615");
    }

    #[test]
    fn rejects_bad_flags() {
        for bad in [
            &[][..],
            &["--count"],
            &["--count", "-1"],
            &["--count", "ten"],
            &["--count", "1", "--count", "2"],
            &["--count", "1", "--seed", "x"],
            &["--count", "1", "--frobnicate"],
            &["--count", "1", "extra"],
            &["--count", "1", "--out="],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
