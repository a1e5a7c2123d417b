//! Wall-clock times as the daemons log them (tracing-subscriber: RFC 3339, UTC, microseconds).

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the Unix epoch.
pub fn unix_secs(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2025-01-31T12:34:56.123456Z`, as the daemons' log lines start.
pub fn utc_string(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_micros()
    )
}

/// The timestamp at the start of a log line, as seconds since the Unix epoch.
pub fn log_line_time(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut dp = date.splitn(3, '-').map(|x| x.parse::<i64>());
    let (y, m, d) = (dp.next()?.ok()?, dp.next()?.ok()?, dp.next()?.ok()?);
    let mut tp = time.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let s: f64 = tp.next()?.parse().ok()?;
    Some((days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60) as f64 + s)
}

/// Log lines whose timestamp lies within [from, to] (Unix seconds).
pub fn log_lines_between(log: &str, from: f64, to: f64) -> Vec<String> {
    log.lines()
        .filter(|l| log_line_time(l).is_some_and(|t| t >= from && t <= to))
        .map(str::to_string)
        .collect()
}
