//! Doctor's report: one entry per check, `ok`, `FAIL` (what it saw and the
//! fix) or `skipped` (why), rendered as text for a terminal or as JSON
//! for a pipeline, and the exit code that goes with it.
//!
//! This module only formats; the checks are decided in [`super`].

use serde_json::{Value, json};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Fail,
    Skipped,
}

impl Status {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "FAIL",
            Status::Skipped => "skipped",
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    /// Stable name (`protected`, `spoof.x-original-method`, `trail.asked`…).
    pub(crate) id: String,
    pub(crate) status: Status,
    /// What doctor saw (ok, FAIL) or why it did not look (skipped).
    pub(crate) detail: String,
    /// For a FAIL: what to change, in the proxy's own terms.
    pub(crate) fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(id: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn fail(
        id: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            id: id.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn skipped(id: impl Into<String>, why: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            status: Status::Skipped,
            detail: why.into(),
            fix: None,
        }
    }
}

/// Output format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// Everything doctor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// The proxy's URL as probed.
    pub(crate) url: String,
    /// The proxy doctor believes it talks to (`nginx`, …), when known.
    pub(crate) proxy: Option<&'static str>,
    pub(crate) checks: Vec<Check>,
}

impl Report {
    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// 0 when nothing failed, 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.count(Status::Fail) == 0 { 0 } else { 1 }
    }

    /// One line per check; a FAIL's fix follows on an indented line.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!(
            "gatehouse doctor: {} (proxy: {})\n",
            self.url,
            self.proxy.unwrap_or("unknown")
        );
        for c in &self.checks {
            out.push_str(&format!(
                "{:<8} {}: {}\n",
                c.status.as_str(),
                c.id,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("{:<8}   fix: {fix}\n", ""));
            }
        }
        out.push_str(&format!(
            "{} ok, {} FAIL, {} skipped\n",
            self.count(Status::Ok),
            self.count(Status::Fail),
            self.count(Status::Skipped)
        ));
        out
    }

    /// The same as one JSON object.
    pub(crate) fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "status": match c.status {
                        Status::Ok => "ok",
                        Status::Fail => "fail",
                        Status::Skipped => "skipped",
                    },
                    "detail": c.detail,
                    "fix": c.fix,
                })
            })
            .collect();
        json!({
            "url": self.url,
            "proxy": self.proxy,
            "checks": checks,
            "ok": self.count(Status::Ok),
            "fail": self.count(Status::Fail),
            "skipped": self.count(Status::Skipped),
            "exit_code": self.exit_code(),
        })
    }

    pub(crate) fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.to_text(),
            Format::Json => format!("{}\n", self.to_json()),
        }
    }
}
