//! Validated settings: the CSV profiles in force, from the built-in ones plus a `recon.toml`
//! (given by `--config`, or found next to the database).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::statement::profile::{Origin, Profile, ProfileSet};

/// The profiles in force and where the user's came from.
pub struct Config {
    pub profiles: ProfileSet,
    pub source: Option<PathBuf>,
}

/// Loads the built-in profiles and the user's `recon.toml`: `--config` if given (it must exist),
/// else `recon.toml` in the database's directory if there is one.
pub fn load(config: Option<&Path>, db: Option<&Path>) -> Result<Config, Error> {
    let mut profiles = ProfileSet::built_in();
    let source = match config {
        Some(path) => Some(path.to_path_buf()),
        None => db
            .map(|db| db.parent().unwrap_or(Path::new(".")).join("recon.toml"))
            .filter(|p| p.is_file()),
    };
    if let Some(path) = &source {
        add_file(&mut profiles, path)?;
    }
    Ok(Config { profiles, source })
}

fn add_file(profiles: &mut ProfileSet, path: &Path) -> Result<(), Error> {
    let text = fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the configuration {}: {e}",
            path.display()
        ))
    })?;
    profiles
        .add_toml(&text, Origin::File(path.display().to_string()))
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// `--profile NAME|FILE`: a known profile by name, or a TOML file holding exactly one profile.
pub fn resolve_profile(arg: &str, profiles: &ProfileSet) -> Result<Profile, Error> {
    if let Some(profile) = profiles.get(arg) {
        return Ok(profile.clone());
    }
    let path = Path::new(arg);
    if !path.is_file() {
        let names: Vec<&str> = profiles.iter().map(|(p, _)| p.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "no profile named {arg:?} and no such file; known profiles: {}",
            names.join(", ")
        )));
    }
    let mut only_file = ProfileSet::empty();
    add_file(&mut only_file, path)?;
    let mut found = only_file.iter().map(|(p, _)| p.clone());
    match (found.next(), found.next()) {
        (Some(profile), None) => Ok(profile),
        _ => Err(Error::Usage(format!(
            "{arg} must hold exactly one [profiles.NAME] section to be used with --profile"
        ))),
    }
}
