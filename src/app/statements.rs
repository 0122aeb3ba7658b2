//! `recon statements list | export`: the statement files kept in the database.

use std::io::Write;
use std::path::Path;

use super::{open, to_json, write_out};
use crate::cli::{StatementsExportArgs, StatementsFormat, StatementsListArgs};
use crate::config::Settings;
use crate::error::{Error, exit};
use crate::ops::statements::{self, StoredFile};
use crate::ops::{OpenMode, Store};

pub(super) fn list(
    settings: &Settings,
    args: &StatementsListArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let files = statements::list(&store)?;
    let text = match args.format {
        StatementsFormat::Json => to_json(&files),
        StatementsFormat::Csv => csv_listing(&files)?,
        StatementsFormat::Table => table(&files),
    };
    write_out(out, &text)?;
    Ok(exit::OK)
}

/// The columns of the CSV listing, named as the JSON fields.
const FIELDS: [&str; 7] = [
    "sha256",
    "format",
    "size",
    "stored_size",
    "statement_ids",
    "stored_at",
    "run_id",
];

fn csv_listing(files: &[StoredFile]) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        w.write_record(FIELDS)?;
        for f in files {
            w.write_record([
                f.sha256.clone(),
                f.format.clone().unwrap_or_default(),
                f.size.to_string(),
                f.stored_size.to_string(),
                f.statement_ids.join(" "),
                f.stored_at.clone(),
                f.run_id.clone(),
            ])?;
        }
        w.flush()?;
        Ok(())
    };
    write().map_err(|e| Error::Internal(format!("writing CSV: {e}")))?;
    let bytes = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8"))
}

/// The stored files as a table for a person: the SHA-256 shortened to the 16 digits that
/// `statements export` takes.
fn table(files: &[StoredFile]) -> String {
    let mut text = format!(
        "{:<16}  {:<20}  {:>12}  {:>10}  {:<20}  {:<36}  {}\n",
        "SHA256", "FORMAT", "SIZE", "STORED", "STORED AT", "RUN", "STATEMENTS"
    );
    for f in files {
        text.push_str(&format!(
            "{:<16}  {:<20}  {:>12}  {:>10}  {:<20}  {:<36}  {}\n",
            &f.sha256[..16],
            f.format.as_deref().unwrap_or("(rejected)"),
            f.size,
            f.stored_size,
            f.stored_at,
            f.run_id,
            f.statement_ids.join(" ")
        ));
    }
    let (size, stored) = files
        .iter()
        .fold((0, 0), |(a, b), f| (a + f.size, b + f.stored_size));
    text.push_str(&format!(
        "{} file(s), {size} bytes kept in {stored}\n",
        files.len()
    ));
    text
}

pub(super) fn export(
    settings: &Settings,
    args: &StatementsExportArgs,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let store = open(settings, OpenMode::MustExist)?;
    let file = statements::find(&store, &args.sha256)?;
    match &args.out {
        None => statements::export(&store, &file, out)?,
        Some(path) => export_to(&store, &file, path, args.force)?,
    }
    Ok(exit::OK)
}

/// Writes the file aside and renames it into place once its bytes are checked, so that a
/// failed export leaves no file that looks like the bank's.
fn export_to(store: &Store, file: &StoredFile, path: &Path, force: bool) -> Result<(), Error> {
    if path.exists() && !force {
        return Err(Error::Usage(format!(
            "{} exists; choose another file or add --force to replace it",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |doing: String| move |source| Error::Io { doing, source };
    let mut temp = tempfile::Builder::new()
        .prefix(".recon-export.")
        .tempfile_in(dir)
        .map_err(io(format!("creating a file in {}", dir.display())))?;
    statements::export(
        store,
        file,
        &mut std::io::BufWriter::new(temp.as_file_mut()),
    )?;
    temp.persist(path)
        .map_err(|e| io(format!("writing {}", path.display()))(e.error))?;
    Ok(())
}
