//! How commands print: human text by default, JSON with `--json`; progress on stderr.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A message for people; in JSON mode it goes to stderr so stdout stays parseable.
    pub fn line(&self, text: &str) {
        if self.json {
            eprintln!("{text}")
        } else {
            println!("{text}")
        }
    }

    /// A result: pretty JSON either way (it is the clearest way to show a record).
    pub fn value<T: Serialize>(&self, value: &T) {
        let text = if self.json {
            serde_json::to_string(value)
        } else {
            serde_json::to_string_pretty(value)
        };
        println!("{}", text.unwrap_or_default());
    }
}

/// A progress bar on a terminal; plain lines at every tenth otherwise (logs, CI).
pub struct Progress {
    bar: Option<ProgressBar>,
    label: &'static str,
    total: u64,
    done: u64,
    next_report: u64,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label);
            bar
        });
        Self {
            bar,
            label,
            total,
            done: 0,
            next_report: 0,
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None => {
                if self.done >= self.next_report || self.done == self.total {
                    let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
                    eprintln!("{}: {}/{} ({percent}%)", self.label, self.done, self.total);
                    self.next_report = self.done + (self.total / 10).max(1);
                }
            }
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}
