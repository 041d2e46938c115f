//! Small file helpers: errors naming the path, atomic writes, output accounting.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::ExportError;

/// Maps an I/O error to [`ExportError::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file through a temporary name and a rename, so a crash never leaves it half
/// written.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let tmp = partial_name(path);
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// The temporary name a file is written under before its rename (hidden: validators and
/// readers skip it).
pub(crate) fn partial_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Files and bytes under `dir` (hidden files excluded).
pub(crate) fn tally(dir: &Path) -> Result<(usize, u64), ExportError> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Creates the hidden temporary folder a recording's files are written into before it is
/// renamed to `final_dir` (removing what an interrupted run left there).
pub(crate) fn fresh_partial_dir(final_dir: &Path) -> Result<PathBuf, ExportError> {
    let parent = final_dir.parent().expect("an output folder has a parent");
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = partial_name(final_dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    Ok(tmp)
}
