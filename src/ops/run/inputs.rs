//! The run's inputs: which files of a statement directory or an inbox are read. What is plainly
//! not a bank's statement (hidden files, half-uploaded `.part`/`.tmp`/`~` files, READMEs, a
//! top-ups file, anything the include patterns leave out, a file still being written) is
//! skipped with a notice instead of rejected, so that it cannot turn a night's status to 65.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::Error;

/// Which files of a folder are a night's inputs.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only names matching one of these are read (`--include '*.xml'`); all when empty.
    pub include: Vec<glob::Pattern>,
    /// Files modified more recently than this are still being written: left for later.
    pub stable_for: Duration,
}

/// A file or folder not read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: String,
}

/// The files to read, in name order, and what was passed over.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<Skipped>,
}

impl Selection {
    /// Lists `dir`'s statement files in name order; with `recursive`, those of its
    /// subdirectories too (else a subdirectory is named in a notice).
    pub fn list(&self, dir: &Path, recursive: bool) -> Result<Listing, Error> {
        let mut listing = Listing::default();
        self.collect(dir, recursive, &mut listing)?;
        Ok(listing)
    }

    fn collect(&self, dir: &Path, recursive: bool, listing: &mut Listing) -> Result<(), Error> {
        let read = |e| Error::Usage(format!("cannot list the folder {}: {e}", dir.display()));
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(read)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(read)?;
        entries.sort();
        for path in entries {
            match self.judge(&path, recursive) {
                Judgement::Read => listing.files.push(path),
                Judgement::Descend => self.collect(&path, recursive, listing)?,
                Judgement::Skip(why) => listing.skipped.push(Skipped { path, why }),
                Judgement::Quiet => {}
            }
        }
        Ok(())
    }

    fn judge(&self, path: &Path, recursive: bool) -> Judgement {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Hidden files and folders (`.DS_Store`, `.git`, editors' swap files) are nobody's
        // statement, and say so often enough that a notice for each would be noise.
        if name.starts_with('.') {
            return Judgement::Quiet;
        }
        // `metadata` follows links: a linked file is read like any other.
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return Judgement::Skip(format!("cannot be read ({e})")),
        };
        if meta.is_dir() {
            return match recursive {
                true => Judgement::Descend,
                false => Judgement::Skip("a folder: its files are not read".into()),
            };
        }
        if !meta.is_file() {
            return Judgement::Skip("not a regular file (a device, pipe or socket)".into());
        }
        if let Some(why) = junk_by_name(&name) {
            return Judgement::Skip(why.into());
        }
        if !self.include.is_empty() && !self.include.iter().any(|p| p.matches(&name)) {
            return Judgement::Skip("not matched by --include".into());
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|at| SystemTime::now().duration_since(at).ok());
        if age.is_some_and(|age| age < self.stable_for) {
            return Judgement::Skip(format!(
                "changed less than {} s ago: probably still being written; read next time",
                self.stable_for.as_secs()
            ));
        }
        if is_topups_file(path) {
            return Judgement::Skip(
                "a top-ups file, not a statement: load it with `recon topups import`".into(),
            );
        }
        Judgement::Read
    }
}

/// What becomes of one entry of a folder.
enum Judgement {
    Read,
    Descend,
    Skip(String),
    Quiet,
}

/// Names no bank gives a statement: uploads in progress, backups, documentation.
fn junk_by_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let partial = [
        ".part",
        ".partial",
        ".tmp",
        ".temp",
        ".crdownload",
        ".filepart",
        "~",
    ];
    if partial.iter().any(|end| lower.ends_with(end)) {
        return Some("an upload or copy in progress (rename it when it is complete)");
    }
    let documentation = lower.starts_with("readme")
        || [".md", ".pdf", ".doc", ".docx", ".html"]
            .iter()
            .any(|end| lower.ends_with(end))
        || ["thumbs.db", "desktop.ini"].contains(&lower.as_str());
    documentation.then_some("documentation or system file, not a statement")
}

/// Whether a file starts like a top-ups file (`topups import`'s CSV header or JSON lines).
fn is_topups_file(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let n = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let first_line = head[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    let first_line = String::from_utf8_lossy(first_line);
    first_line.contains("account_group_id") && first_line.contains("cash_amount")
}

/// Expands directories (their statement files in name order) and checks that every path
/// exists; a file named explicitly is read whatever its name.
pub fn resolve(paths: &[PathBuf], selection: &Selection) -> Result<Listing, Error> {
    let mut all = Listing::default();
    for path in paths {
        let meta = fs::metadata(path)
            .map_err(|e| Error::Usage(format!("cannot read statement {}: {e}", path.display())))?;
        if !meta.is_dir() {
            all.files.push(path.clone());
            continue;
        }
        let listing = selection.list(path, true)?;
        if listing.files.is_empty() {
            let passed_over: Vec<String> = listing
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.path.display(), s.why))
                .collect();
            return Err(Error::Usage(format!(
                "the directory {} holds no statement files{}",
                path.display(),
                if passed_over.is_empty() {
                    String::new()
                } else {
                    format!(" (passed over: {})", passed_over.join("; "))
                }
            )));
        }
        all.files.extend(listing.files);
        all.skipped.extend(listing.skipped);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_in_progress_documentation_and_topups_files_are_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
        write("2026-11-21.xml", "<Document/>");
        write("2026-11-22.xml.part", "<Docu");
        write("README.md", "# how the bank sends files");
        write(
            "topups.csv",
            "id,created_at,account_group_id,cash_amount,currency\n",
        );
        write(".hidden.xml", "<Document/>");
        write("notes.txt~", "backup");
        fs::create_dir(dir.path().join("old")).unwrap();
        let listing = Selection::default().list(dir.path(), false).unwrap();
        let names = |paths: Vec<&PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(listing.files.iter().collect()), ["2026-11-21.xml"]);
        assert_eq!(
            names(listing.skipped.iter().map(|s| &s.path).collect()),
            [
                "2026-11-22.xml.part",
                "README.md",
                "notes.txt~",
                "old",
                "topups.csv"
            ]
        );
        assert!(listing.skipped[4].why.contains("topups import"));
        let only_csv = Selection {
            include: vec![glob::Pattern::new("*.csv").unwrap()],
            ..Selection::default()
        };
        let listing = only_csv.list(dir.path(), false).unwrap();
        assert!(listing.files.is_empty());
        assert!(listing.skipped.iter().any(|s| s.why.contains("--include")));
    }

    #[test]
    fn a_file_changed_a_moment_ago_waits_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("now.xml"), "<Document/>").unwrap();
        let patient = Selection {
            stable_for: Duration::from_secs(3600),
            ..Selection::default()
        };
        let listing = patient.list(dir.path(), false).unwrap();
        assert!(listing.files.is_empty());
        assert!(listing.skipped[0].why.contains("still being written"));
    }
}
