//! Medians, ratios, the table on the terminal, the JSON and the SVG chart.

use serde::Serialize;

use crate::cases::{Case, Measurement};

#[derive(Serialize)]
pub struct Summary {
    pub quick: bool,
    pub machine: String,
    pub cases: Vec<Row>,
}

#[derive(Serialize)]
pub struct Row {
    pub case: Case,
    pub sque: Measurement,
    pub bullmq: Option<Measurement>,
    /// sque / BullMQ of the headline figure (jobs/s: higher is better; latency p50 and
    /// bytes: lower is better).
    pub ratio: Option<f64>,
    pub runs: usize,
}

fn median(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values.flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn medians(runs: &[Measurement]) -> Measurement {
    Measurement {
        jobs_per_sec: median(runs.iter().map(|m| m.jobs_per_sec)),
        p50_ms: median(runs.iter().map(|m| m.p50_ms)),
        p90_ms: median(runs.iter().map(|m| m.p90_ms)),
        p99_ms: median(runs.iter().map(|m| m.p99_ms)),
        max_ms: median(runs.iter().map(|m| m.max_ms)),
        rss_bytes: median(runs.iter().map(|m| m.rss_bytes)),
        bytes_per_job: median(runs.iter().map(|m| m.bytes_per_job)),
        redis_cpu_us_per_job: median(runs.iter().map(|m| m.redis_cpu_us_per_job)),
        host_cpu_us_per_job: median(runs.iter().map(|m| m.host_cpu_us_per_job)),
        longest_call_ms: median(runs.iter().map(|m| m.longest_call_ms)),
        cold_start_s: median(runs.iter().map(|m| m.cold_start_s)),
        cold_rss_bytes: median(runs.iter().map(|m| m.cold_rss_bytes)),
        cached_start_s: median(runs.iter().map(|m| m.cached_start_s)),
        scrape_cpu_us: median(runs.iter().map(|m| m.scrape_cpu_us)),
        scrape_share: median(runs.iter().map(|m| m.scrape_share)),
        redis_commands_per_sec: median(runs.iter().map(|m| m.redis_commands_per_sec)),
        redis_cpu_ms_per_sec: median(runs.iter().map(|m| m.redis_cpu_ms_per_sec)),
    }
}

fn headline(m: &Measurement) -> Option<f64> {
    m.jobs_per_sec.or(m.p50_ms).or(m.bytes_per_job)
}

pub fn summarize(results: &[(Case, Vec<Measurement>, Vec<Measurement>)], quick: bool) -> Summary {
    let cases = results
        .iter()
        .map(|(case, s, b)| {
            let sque = medians(s);
            let bullmq = (!b.is_empty()).then(|| medians(b));
            let ratio = match (headline(&sque), bullmq.as_ref().and_then(headline)) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            Row {
                case: case.clone(),
                sque,
                bullmq,
                ratio,
                runs: s.len(),
            }
        })
        .collect();
    Summary {
        quick,
        machine: format!(
            "{} cores, {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            std::process::Command::new("redis-server")
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        ),
        cases,
    }
}

fn describe(m: &Measurement) -> String {
    let mut parts = Vec::new();
    if let Some(v) = m.jobs_per_sec {
        parts.push(format!("{v:.0} jobs/s"));
    }
    if let (Some(p50), Some(p90), Some(p99), Some(max)) = (m.p50_ms, m.p90_ms, m.p99_ms, m.max_ms) {
        parts.push(format!(
            "p50 {p50:.2} / p90 {p90:.2} / p99 {p99:.2} / max {max:.2} ms"
        ));
    }
    if let Some(v) = m.bytes_per_job {
        parts.push(format!("{v:.0} B/job"));
    }
    if let (Some(r), Some(h)) = (m.redis_cpu_us_per_job, m.host_cpu_us_per_job) {
        parts.push(format!("CPU/job: Redis {r:.1} µs, host {h:.1} µs"));
    }
    if let Some(v) = m.rss_bytes {
        parts.push(format!("RSS {:.0} MiB", v / (1 << 20) as f64));
    }
    if let Some(v) = m.longest_call_ms {
        parts.push(format!("longest Redis call {v:.2} ms"));
    }
    if let (Some(cold), Some(rss), Some(cached)) =
        (m.cold_start_s, m.cold_rss_bytes, m.cached_start_s)
    {
        parts.push(format!(
            "start {cold:.1} s compiling (RSS {:.0} MiB), {cached:.2} s cached",
            rss / (1 << 20) as f64
        ));
    }
    if let (Some(cpu), Some(share)) = (m.scrape_cpu_us, m.scrape_share) {
        parts.push(format!(
            "a scrape: {cpu:.0} µs CPU (host + Redis), {:.3}% of a second of processing",
            share * 100.0
        ));
    }
    if let (Some(commands), Some(cpu)) = (m.redis_commands_per_sec, m.redis_cpu_ms_per_sec) {
        parts.push(format!(
            "Redis: {commands:.0} commands/s, {cpu:.2} ms CPU/s above idle"
        ));
    }
    parts.join(", ")
}

pub fn print(summary: &Summary) {
    println!(
        "\n{:<40} {:<52} {:<52} sque/BullMQ",
        "case", "sque (median)", "BullMQ (median)"
    );
    for row in &summary.cases {
        println!(
            "{:<40} {:<52} {:<52} {}",
            row.case.name,
            describe(&row.sque),
            row.bullmq
                .as_ref()
                .map(describe)
                .unwrap_or_else(|| "-".into()),
            row.ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

/// A bar chart: for each case, sque and BullMQ side by side, scaled to the larger of the two.
pub fn svg(summary: &Summary) -> String {
    let rows: Vec<(&str, f64, Option<f64>, &str)> = summary
        .cases
        .iter()
        .filter_map(|r| {
            let s = headline(&r.sque)?;
            let unit = if r.sque.jobs_per_sec.is_some() {
                "jobs/s"
            } else if r.sque.p50_ms.is_some() {
                "ms p50 (lower is better)"
            } else {
                "bytes/job (lower is better)"
            };
            Some((
                r.case.name.as_str(),
                s,
                r.bullmq.as_ref().and_then(headline),
                unit,
            ))
        })
        .collect();
    let (left, width, bar, gap) = (330.0, 420.0, 14.0, 16.0);
    let height = 60.0 + rows.len() as f64 * (2.0 * bar + gap);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\">sque vs BullMQ{} ({})</text>\n\
         <rect x=\"10\" y=\"30\" width=\"12\" height=\"10\" fill=\"#2b6cb0\"/><text x=\"26\" y=\"39\">sque</text>\n\
         <rect x=\"70\" y=\"30\" width=\"12\" height=\"10\" fill=\"#c05621\"/><text x=\"86\" y=\"39\">BullMQ</text>\n",
        left + width + 200.0,
        if summary.quick { ", quick mode" } else { "" },
        escape(&summary.machine),
    );
    for (i, (name, s, b, unit)) in rows.iter().enumerate() {
        let y = 55.0 + i as f64 * (2.0 * bar + gap);
        let max = s.max(b.unwrap_or(0.0)).max(f64::MIN_POSITIVE);
        out += &format!("<text x=\"10\" y=\"{}\">{}</text>\n", y + bar, escape(name));
        out += &format!(
            "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{bar}\" fill=\"#2b6cb0\"/><text x=\"{:.1}\" y=\"{:.1}\">{} {}</text>\n",
            width * s / max,
            left + width * s / max + 4.0,
            y + bar - 3.0,
            fmt(*s),
            unit
        );
        if let Some(b) = b {
            out += &format!(
                "<rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar}\" fill=\"#c05621\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                y + bar,
                width * b / max,
                left + width * b / max + 4.0,
                y + 2.0 * bar - 3.0,
                fmt(*b)
            );
        }
    }
    out + "</svg>\n"
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
