//! The reading thread of `recon run` alone: one statement file read as `ops/run/read.rs` reads
//! it (identities, candidate references, cross-format keys), timed by this thread's CPU time so
//! that a busy machine disturbs it less than the wall clock, with a digest of everything read,
//! to show that two versions read the same.
//!
//! `cargo run --release --example read_thread -- STATEMENT [ROUNDS]`; with `NODIGEST` set, the
//! digest is left out (for a profiler: `valgrind --tool=callgrind` counts instructions).

use std::hash::{DefaultHasher, Hash, Hasher};

use recon::reference::find_candidates;
use recon::statement::{self, ReadOptions, identity};

/// This thread's time on a CPU so far, in nanoseconds (Linux).
fn cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let first = stat.split_whitespace().next().expect("a first field");
    first.parse().expect("nanoseconds")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().expect("a statement file"));
    let rounds: usize = args
        .next()
        .map_or(3, |n| n.parse().expect("a number of rounds"));
    let digesting = std::env::var_os("NODIGEST").is_none();
    let options = ReadOptions::default();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let mut digest = DefaultHasher::new();
        let (mut read, mut digest_ns) = (0, 0);
        let start = cpu_ns();
        let mut cross = identity::CrossAssigner::default();
        let file = statement::read_path_in_batches(&path, &options, &mut |batch| {
            let batch: Vec<_> = batch
                .into_iter()
                .map(|mut tx| {
                    let fields = tx.remittance.search_fields();
                    let candidates = find_candidates(fields.iter().map(AsRef::as_ref));
                    tx.cross_key = cross.key(&tx, candidates.iter().map(|c| c.reference));
                    (tx, candidates)
                })
                .collect();
            read += batch.len();
            if digesting {
                let before = cpu_ns();
                format!("{batch:?}").hash(&mut digest);
                digest_ns += cpu_ns() - before;
            }
            true
        })
        .expect("a statement recon reads");
        let cpu_ms = (cpu_ns() - start - digest_ns) / 1_000_000;
        format!("{:?} {}", file.statements, file.sha256).hash(&mut digest);
        println!(
            "{read} transactions, reading thread {cpu_ms} ms CPU, digest {:016x}",
            digest.finish()
        );
        times.push(cpu_ms);
    }
    times.sort_unstable();
    println!(
        "fastest {} ms, median {} ms",
        times[0],
        times[times.len() / 2]
    );
}
