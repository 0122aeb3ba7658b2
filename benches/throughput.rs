//! Throughput on a generated night (`recon bench-data`): camt parsing next to a raw quick-xml
//! event scan of the same bytes (the ceiling), CSV parsing, reference extraction, matching, and
//! the whole `recon run`. `cargo bench` runs them; `RECON_BENCH_TRANSACTIONS` sets the night's
//! size (default 10,000).

use std::hint::black_box;
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quick_xml::events::Event;
use recon::matching::{Known, KnownTopUp, Matcher};
use recon::reference::find_candidates;
use recon::statement::camt::CamtReader;
use recon::statement::csv::CsvReader;
use recon::statement::profile::ProfileSet;
use recon::statement::{Limits, StatementReader, identity};

fn night() -> (tempfile::TempDir, usize) {
    let transactions = std::env::var("RECON_BENCH_TRANSACTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let spec = recon::benchdata::Spec {
        topups: transactions * 6 / 5,
        transactions,
        seed: 1,
        created_at: None,
        booked_on: None,
        mix: recon::benchdata::Mix::Realistic,
    };
    recon::benchdata::generate(&spec, dir.path()).unwrap();
    (dir, transactions)
}

fn benches(c: &mut Criterion) {
    let (dir, n) = night();
    let xml = std::fs::read(dir.path().join("statement.xml")).unwrap();
    let csv_bytes = std::fs::read(dir.path().join("statement.csv")).unwrap();
    let limits = Limits::default();

    let mut group = c.benchmark_group("parse");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.bench_function("quick-xml raw event scan (ceiling)", |b| {
        b.iter(|| {
            let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
            let mut buf = Vec::new();
            let mut events = 0usize;
            loop {
                match reader.read_event_into(&mut buf) {
                    Ok(Event::Eof) => break,
                    Ok(_) => events += 1,
                    Err(e) => panic!("{e}"),
                }
                buf.clear();
            }
            black_box(events)
        })
    });
    group.bench_function("camt.053 into transactions", |b| {
        b.iter(|| {
            black_box(
                CamtReader::default()
                    .read_all(xml.as_slice(), &limits)
                    .unwrap()
                    .1
                    .len(),
            )
        })
    });
    let profiles = ProfileSet::built_in();
    let csv = CsvReader {
        profile: profiles.get("recon").unwrap(),
        skip_bad_rows: false,
    };
    group.throughput(Throughput::Bytes(csv_bytes.len() as u64));
    group.bench_function("canonical CSV into transactions", |b| {
        b.iter(|| black_box(csv.read_all(csv_bytes.as_slice(), &limits).unwrap().1.len()))
    });
    group.finish();

    let (_, mut transactions) = CamtReader::default()
        .read_all(xml.as_slice(), &limits)
        .unwrap();
    identity::assign(&mut transactions);
    let texts: Vec<Vec<String>> = transactions
        .iter()
        .map(|t| {
            let fields = t.remittance.search_fields().into_iter();
            fields.map(String::from).collect::<Vec<String>>()
        })
        .collect();
    let mut group = c.benchmark_group("decide");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("reference extraction", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|fields| find_candidates(fields.iter().map(String::as_str)).len())
                .sum::<usize>()
        })
    });
    let candidates: Vec<_> = texts
        .iter()
        .map(|f| find_candidates(f.iter().map(String::as_str)))
        .collect();
    let mut known = Known::default();
    let topups = std::fs::read_to_string(dir.path().join("topups.csv")).unwrap();
    for line in topups.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let topup = recon::topup::TopUp {
            id: f[0].parse().unwrap(),
            created_at: f[1].parse().unwrap(),
            account_group_id: f[2].parse().unwrap(),
            cash_amount: f[3].parse().unwrap(),
            currency: f[4].parse().unwrap(),
            status: recon::topup::Status::Confirmed,
            settlement_reference: f[6].parse().unwrap(),
        };
        known.topups.insert(
            topup.settlement_reference,
            KnownTopUp {
                topup,
                settled_by: None,
            },
        );
    }
    group.bench_function("matching", |b| {
        b.iter(|| {
            let mut matcher = Matcher::new();
            transactions
                .iter()
                .zip(&candidates)
                .map(|(tx, c)| matcher.decide(tx, c, &known).outcome as usize)
                .sum::<usize>()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("whole run");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    let recon = env!("CARGO_BIN_EXE_recon");
    let base = dir.path().join("base.sqlite");
    let status = Command::new(recon)
        .args([
            "topups",
            "import",
            "--db",
            base.to_str().unwrap(),
            dir.path().join("topups.csv").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let mut i = 0;
    group.bench_function(format!("recon run, {n} transactions"), |b| {
        b.iter(|| {
            i += 1;
            let db = dir.path().join(format!("run-{i}.sqlite"));
            std::fs::copy(&base, &db).unwrap();
            let out = dir.path().join(format!("report-{i}"));
            let status = Command::new(recon)
                .args([
                    "run",
                    "-q",
                    "--db",
                    db.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ])
                .arg(dir.path().join("statement.xml"))
                .status()
                .unwrap();
            assert!(status.success());
        })
    });
    group.finish();
}

criterion_group!(throughput, benches);
criterion_main!(throughput);
