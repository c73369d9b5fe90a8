//! Prometheus text exposition (format 0.0.4) for both agents' `/metrics`:
//! every family once, with HELP and TYPE, its samples together, label
//! values escaped. Written by hand rather than with a registry crate:
//! every value is read at scrape time (nft, haproxy, libvirt, /proc), and
//! the text must stay in the 0.0.4 format promtool checks.

use std::collections::BTreeMap;

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Histogram {
    /// Observations per bucket of [`BUCKETS`] (not cumulative).
    pub buckets: [u64; BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

struct Family {
    help: &'static str,
    kind: Kind,
    lines: Vec<String>,
}

/// Families in the order they were first named.
#[derive(Default)]
pub struct Exposition {
    order: Vec<String>,
    families: BTreeMap<String, Family>,
}

pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &'static str) -> &mut Vec<String> {
        if !self.families.contains_key(name) {
            self.order.push(name.to_string());
        }
        let f = self.families.entry(name.to_string()).or_insert(Family {
            help,
            kind,
            lines: vec![],
        });
        debug_assert_eq!(f.kind, kind, "{name} declared twice with two types");
        &mut f.lines
    }

    /// Declare a family without samples yet (HELP and TYPE are still shown).
    pub fn declare(&mut self, name: &str, kind: Kind, help: &'static str) {
        self.family(name, kind, help);
    }

    pub fn counter(&mut self, name: &str, help: &'static str, labels: Labels, v: f64) {
        let line = sample(name, labels, None, v);
        self.family(name, Kind::Counter, help).push(line);
    }

    pub fn gauge(&mut self, name: &str, help: &'static str, labels: Labels, v: f64) {
        let line = sample(name, labels, None, v);
        self.family(name, Kind::Gauge, help).push(line);
    }

    pub fn histogram(&mut self, name: &str, help: &'static str, labels: Labels, h: &Histogram) {
        let mut lines = vec![];
        let mut cumulative = 0;
        for (le, n) in BUCKETS.iter().zip(&h.buckets) {
            cumulative += n;
            let le = le.to_string();
            lines.push(sample(
                &format!("{name}_bucket"),
                labels,
                Some(&le),
                cumulative as f64,
            ));
        }
        lines.push(sample(
            &format!("{name}_bucket"),
            labels,
            Some("+Inf"),
            h.count as f64,
        ));
        lines.push(sample(&format!("{name}_sum"), labels, None, h.sum));
        lines.push(sample(
            &format!("{name}_count"),
            labels,
            None,
            h.count as f64,
        ));
        self.family(name, Kind::Histogram, help).extend(lines);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let f = &self.families[name];
            out.push_str(&format!(
                "# HELP {name} {}\n# TYPE {name} {}\n",
                f.help,
                f.kind.name()
            ));
            for l in &f.lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn sample(name: &str, labels: Labels, le: Option<&str>, v: f64) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    let labels = if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    };
    format!("{name}{labels} {}", value(v))
}

fn value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        v.to_string()
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_help_and_type_per_family_samples_together_and_escaped() {
        let mut e = Exposition::default();
        e.counter("a_total", "A.", &[("x", "1")], 1.0);
        e.gauge("b", "B.", &[], 0.5);
        e.counter("a_total", "A.", &[("x", "q\"\\\n")], 2.0);
        let mut h = Histogram::default();
        h.observe(0.003);
        e.histogram("d_seconds", "D.", &[("s", "nat")], &h);
        let t = e.render();
        assert_eq!(t.matches("# TYPE a_total counter").count(), 1, "{t}");
        assert!(
            t.starts_with(
                "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n\
                 a_total{x=\"q\\\"\\\\\\n\"} 2\n# HELP b B.\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("d_seconds_bucket{s=\"nat\",le=\"0.001\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("d_seconds_bucket{s=\"nat\",le=\"0.005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("d_seconds_bucket{s=\"nat\",le=\"+Inf\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("d_seconds_count{s=\"nat\"} 1\n"), "{t}");
    }
}
