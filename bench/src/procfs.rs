//! Readings of `/proc` (Linux): a server's resident memory and CPU time, the load average.
//! Each is `None` where the file is missing or unreadable (another OS, a process gone).

/// The resident memory of process `pid`, kB, from `/proc/PID/status` (`VmRSS`).
#[must_use]
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_kb(&status)
}

fn parse_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// CPU time process `pid` has used (user + system), seconds, from `/proc/PID/stat`.
#[must_use]
pub fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_s(&stat)
}

fn parse_cpu_s(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses; the fields after its last
    // closing parenthesis are plain: state is field 3, utime field 14, stime field 15, in
    // clock ticks, which Linux reports at USER_HZ = 100 per second.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `/proc/loadavg`'s three load averages, joined by ", ".
#[must_use]
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_load_average(&text)
}

fn parse_load_average(text: &str) -> Option<String> {
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_rss_kb("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234));
        assert_eq!(parse_rss_kb("Name:\tx\n"), None);
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        assert_eq!(parse_cpu_s(stat), Some(4.0));
        assert_eq!(parse_cpu_s("42 (x"), None);
        assert_eq!(
            parse_load_average("0.50 0.40 0.30 1/100 42\n").as_deref(),
            Some("0.50, 0.40, 0.30")
        );
        assert_eq!(parse_load_average("0.5"), None);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
            assert!(cpu_s(std::process::id()).is_some());
        }
    }
}
