//! `wisp top TARGET`: the busiest paths of the target's traffic, from tap
//! events, in a table refreshed in place (`linkerd viz top`): Source,
//! Destination, Method, Path, Count, Best, Worst, Last, Success Rate.
//!
//! On a terminal it uses the alternate screen in raw mode, and restores the
//! terminal however it ends (q, Esc, Ctrl-C, a signal, `--duration`, an
//! error, a panic). When stdout is not a terminal it prints the table once,
//! when it ends.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, terminal, ExecutableCommand};
use tokio::sync::mpsc;

use crate::tap::event::{Kind, StreamId, Tapped};
use crate::tap::observe::{observe_request, spawn_taps, FilterArgs, Report};
use crate::tap::tls::{TapTls, TapTlsArgs};
use crate::target::TargetArgs;

/// How often the table is redrawn.
const REFRESH: Duration = Duration::from_secs(1);

/// Arguments of `wisp top`.
#[derive(clap::Args)]
pub struct TopArgs {
    /// The proxies to tap: `pod/NAME`, `deploy/NAME`, `ns/NAME`, or a
    /// proxy's admin `HOST:PORT`.
    pub target: String,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub tls: TapTlsArgs,
    /// Leave out the Source column (aggregate over clients).
    #[arg(long)]
    pub hide_sources: bool,
    /// Stop after this long (default: until q or Ctrl-C).
    #[arg(long, value_parser = wisp_common::duration::parse_positive_flag_duration)]
    pub duration: Option<Duration>,
}

/// One row: requests of a (source, destination, method, path).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    /// The client (pod name or IP); empty with `--hide-sources`.
    pub source: String,
    /// The server (pod name or IP).
    pub destination: String,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
}

/// What a row has seen.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// Completed requests.
    pub count: u64,
    /// Successful ones (no 5xx, gRPC OK or none, not reset).
    pub successes: u64,
    /// Fastest.
    pub best: Duration,
    /// Slowest.
    pub worst: Duration,
    /// Most recent.
    pub last: Duration,
}

struct Pending {
    key: RowKey,
    status: u32,
}

/// The table, fed with events.
#[derive(Default)]
pub struct Table {
    hide_sources: bool,
    pending: HashMap<(usize, StreamId), Pending>,
    rows: HashMap<RowKey, Row>,
}

fn name(labels: &std::collections::BTreeMap<String, String>, addr: Option<SocketAddr>) -> String {
    labels
        .get("pod")
        .cloned()
        .or_else(|| addr.map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "-".into())
}

impl Table {
    /// An empty table.
    pub fn new(hide_sources: bool) -> Table {
        Table {
            hide_sources,
            ..Table::default()
        }
    }

    /// Takes in one event of proxy `proxy`.
    pub fn add(&mut self, proxy: usize, e: &Tapped) {
        let id = (proxy, e.id);
        match &e.kind {
            Kind::Request { method, path, .. } => {
                let key = RowKey {
                    source: if self.hide_sources {
                        String::new()
                    } else {
                        name(&e.source_labels, e.source)
                    },
                    destination: name(&e.destination_labels, e.destination),
                    method: method.clone(),
                    path: path.clone(),
                };
                self.pending.insert(id, Pending { key, status: 0 });
            }
            Kind::Response { status, .. } => {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.status = *status;
                }
            }
            Kind::End {
                since_request,
                grpc_status,
                reset,
                ..
            } => {
                let Some(p) = self.pending.remove(&id) else {
                    return;
                };
                let ok = reset.is_none() && grpc_status.unwrap_or(0) == 0 && p.status < 500;
                let latency = since_request.unwrap_or_default();
                let row = self.rows.entry(p.key).or_default();
                if row.count == 0 || latency < row.best {
                    row.best = latency;
                }
                row.worst = row.worst.max(latency);
                row.last = latency;
                row.count += 1;
                row.successes += u64::from(ok);
            }
        }
    }

    /// Rows, busiest first.
    pub fn rows(&self) -> Vec<(&RowKey, &Row)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0)));
        rows
    }

    /// The table as lines of text, at most `max_rows` rows.
    pub fn render(&self, max_rows: usize) -> Vec<String> {
        let mut header = vec!["Source", "Destination", "Method", "Path"];
        if self.hide_sources {
            header.remove(0);
        }
        header.extend(["Count", "Best", "Worst", "Last", "Success Rate"]);
        let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for (k, r) in self.rows().into_iter().take(max_rows) {
            let mut row = Vec::new();
            if !self.hide_sources {
                row.push(k.source.clone());
            }
            row.extend([
                k.destination.clone(),
                k.method.clone(),
                k.path.clone(),
                r.count.to_string(),
                go_duration(r.best),
                go_duration(r.worst),
                go_duration(r.last),
                format!("{:.2}%", 100.0 * r.successes as f64 / r.count.max(1) as f64),
            ]);
            cells.push(row);
        }
        let cols = cells[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        cells
            .iter()
            .map(|r| {
                let mut line = String::new();
                for (c, cell) in r.iter().enumerate() {
                    line.push_str(cell);
                    if c + 1 < cols {
                        line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                    }
                }
                line.trim_end().to_string()
            })
            .collect()
    }
}

/// A latency as Go prints a duration rounded to microseconds (`1.234ms`, `56µs`).
pub fn go_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        return "0s".into();
    }
    let trim = |x: f64| {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{}ms", trim(us as f64 / 1e3))
    } else {
        format!("{}s", trim(us as f64 / 1e6))
    }
}

/// The terminal in the alternate screen and raw mode; restored on drop.
struct Screen;

impl Screen {
    fn enter() -> anyhow::Result<Screen> {
        terminal::enable_raw_mode()?;
        // From here on, dropping the guard undoes whatever was done.
        let screen = Screen;
        let mut out = std::io::stdout();
        out.execute(terminal::EnterAlternateScreen)?;
        out.execute(cursor::Hide)?;
        Ok(screen)
    }

    fn draw(&self, title: &str, table: &Table) -> std::io::Result<()> {
        // A pseudo-terminal nobody sized says 0 rows.
        let height = match terminal::size() {
            Ok((_, h)) if h > 0 => h,
            _ => 24,
        };
        let rows = usize::from(height).saturating_sub(3).max(1);
        let mut frame = String::new();
        frame.push_str(title);
        frame.push_str("\r\n\r\n");
        for line in table.render(rows) {
            frame.push_str(&line);
            frame.push_str("\r\n");
        }
        let mut out = std::io::stdout().lock();
        out.execute(cursor::MoveTo(0, 0))?;
        out.execute(terminal::Clear(terminal::ClearType::All))?;
        out.write_all(frame.as_bytes())?;
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        let _ = out.execute(cursor::Show);
        let _ = out.execute(terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

/// Reads keys on a thread of its own (crossterm's reader blocks) until
/// `stop`, sending them to the returned channel.
fn keys(stop: Arc<AtomicBool>) -> mpsc::UnboundedReceiver<KeyEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match crossterm::event::poll(Duration::from_millis(100)) {
                Ok(true) => match crossterm::event::read() {
                    Ok(Event::Key(k)) => {
                        if tx.send(k).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

fn quits(k: &KeyEvent) -> bool {
    matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
        || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
}

/// Runs `wisp top`.
pub fn run_top(args: TopArgs) -> anyhow::Result<()> {
    let proxies = super::resolve(&args.target, &args.targets)?;
    let req = observe_request(&args.filter, &args.targets, false)?;
    let tls = TapTls::load(&args.tls)?;
    let interactive = std::io::stdout().is_terminal();
    let rt = super::runtime()?;
    let title = format!("wisp top {}  (press q to quit)", args.target);
    let mut table = Table::new(args.hide_sources);
    let result = rt.block_on(async {
        let mut signals = wisp_common::signal::ShutdownSignals::new()?;
        let (tx, mut rx) = mpsc::channel(1024);
        let _taps = spawn_taps(&proxies, req, tls.as_ref(), tx)?;
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_keys = StopOnDrop(stop.clone());
        let (screen, mut keys) = if interactive {
            let screen = Screen::enter()?;
            (Some(screen), keys(stop.clone()))
        } else {
            (None, mpsc::unbounded_channel().1)
        };
        let deadline = args
            .duration
            .map(|d| tokio::time::Instant::now() + d)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        let mut tick = tokio::time::interval(REFRESH);
        let mut failed = 0;
        let mut errors = Vec::new();
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(Report::Event(i, e)) => table.add(i, &e),
                    Some(Report::Failed(_, e)) => {
                        failed += 1;
                        errors.push(e);
                        if failed == proxies.len() {
                            break;
                        }
                    }
                    None => break,
                },
                Some(k) = keys.recv() => {
                    if quits(&k) {
                        break;
                    }
                }
                _ = tick.tick() => {
                    if let Some(s) = &screen {
                        s.draw(&title, &table)?;
                    }
                }
                _ = signals.recv() => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Some(s) = &screen {
            s.draw(&title, &table)?;
        }
        drop(screen);
        if failed == proxies.len() {
            if let Some(e) = errors.into_iter().next() {
                return Err(e);
            }
        } else {
            for e in errors {
                eprintln!("wisp: {}", wisp_common::error::chain_of(e.chain()));
            }
        }
        Ok(())
    });
    // Dropping the runtime would wait for the key reader; it stops itself.
    rt.shutdown_background();
    result?;
    let mut out = std::io::stdout().lock();
    for line in table.render(usize::MAX) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev(stream: u64, kind: Kind) -> Tapped {
        Tapped {
            id: StreamId { base: 0, stream },
            direction: crate::tap::event::Direction::Outbound,
            source: "127.0.0.10:5000".parse().ok(),
            destination: "127.0.0.11:8080".parse().ok(),
            source_labels: BTreeMap::new(),
            destination_labels: [("pod".to_string(), "web-0".to_string())].into(),
            route_labels: BTreeMap::new(),
            kind,
        }
    }

    fn request(table: &mut Table, stream: u64, path: &str, status: u32, ms: u64) {
        table.add(
            0,
            &ev(
                stream,
                Kind::Request {
                    method: "GET".into(),
                    scheme: "http".into(),
                    authority: "web".into(),
                    path: path.into(),
                    headers: vec![],
                },
            ),
        );
        table.add(
            0,
            &ev(
                stream,
                Kind::Response {
                    status,
                    latency: None,
                    headers: vec![],
                },
            ),
        );
        table.add(
            0,
            &ev(
                stream,
                Kind::End {
                    since_request: Some(Duration::from_millis(ms)),
                    since_response: None,
                    bytes: 0,
                    grpc_status: None,
                    reset: None,
                    trailers: vec![],
                },
            ),
        );
    }

    #[test]
    fn aggregates_paths_busiest_first() {
        let mut t = Table::new(false);
        request(&mut t, 1, "/a", 200, 3);
        request(&mut t, 2, "/b", 200, 1);
        request(&mut t, 3, "/b", 500, 2);
        let lines = t.render(10);
        assert_eq!(
            lines[0],
            "Source      Destination  Method  Path  Count  Best  Worst  Last  Success Rate"
        );
        assert_eq!(
            lines[1],
            "127.0.0.10  web-0        GET     /b    2      1ms   2ms    2ms   50.00%"
        );
        assert_eq!(
            lines[2],
            "127.0.0.10  web-0        GET     /a    1      3ms   3ms    3ms   100.00%"
        );
        let mut hidden = Table::new(true);
        request(&mut hidden, 1, "/a", 200, 3);
        assert!(hidden.render(10)[0].starts_with("Destination"));
        assert_eq!(go_duration(Duration::from_micros(1234)), "1.234ms");
        assert_eq!(go_duration(Duration::from_micros(56)), "56µs");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
