//! A local folder standing in for a bucket.
//!
//! Each upload writes a hidden temporary file beside its final path and renames it into place
//! on `complete` (after fsync), so a reader never sees a half-written file under a final key,
//! and a crash leaves at most a `.byob-partial` file, never a truncated object.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::io::Write;

use bytes::Bytes;

use super::{ObjectSink, PutOptions, Upload};
use crate::{Error, Result};

/// Writes objects as files under a root folder; the key's `/` become folders.
#[derive(Debug, Clone)]
pub struct LocalSink {
    root: PathBuf,
}

static UPLOAD_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalSink {
    /// A sink rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalSink { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a key maps to. Keys are validated by the layout before they get here; this
    /// check is the last line of defence against writing outside the root.
    pub fn path_of(&self, key: &str) -> Result<PathBuf> {
        let rel = Path::new(key);
        // Check the key's own segments: `Path::components` would quietly fold `a//b` and `a/./b`.
        let safe = !key.is_empty()
            && key.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'))
            && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(Error::Sink {
                target: self.location(),
                key: key.to_string(),
                source: "key must be a relative path without '.', '..' or empty segments".into(),
            });
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait::async_trait]
impl ObjectSink for LocalSink {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn start(&self, key: &str, _options: &PutOptions) -> Result<Box<dyn Upload>> {
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Error::io(&dir, e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = UPLOAD_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.byob-partial", std::process::id()));
        let file = tokio::fs::File::create(&tmp).await.map_err(|e| Error::io(&tmp, e))?.into_std().await;
        Ok(Box::new(LocalUpload { file: Some(file), tmp, path, key: key.to_string() }))
    }
}

/// Parts are written by `std::fs` on a blocking thread straight from their buffer (tokio's
/// `File` would copy every part into a buffer of its own first).
struct LocalUpload {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    key: String,
}

impl LocalUpload {
    fn take_file(&mut self) -> Result<std::fs::File> {
        let tmp = self.tmp.clone();
        self.file.take().ok_or_else(|| Error::io(tmp, std::io::Error::other("upload already completed or aborted")))
    }

    /// Runs `work` on the file on a blocking thread. The file is kept whatever `work` returns,
    /// so a failed upload still removes its temporary file when aborted or dropped.
    async fn with_file(
        &mut self,
        work: impl FnOnce(&mut std::fs::File) -> std::io::Result<()> + Send + 'static,
    ) -> Result<()> {
        let mut file = self.take_file()?;
        let (file, done) = tokio::task::spawn_blocking(move || {
            let done = work(&mut file);
            (file, done)
        })
        .await
        .map_err(|e| Error::io(&self.tmp, std::io::Error::other(e)))?;
        self.file = Some(file);
        done.map_err(|e| Error::io(&self.tmp, e))
    }
}

#[async_trait::async_trait]
impl Upload for LocalUpload {
    async fn put_part(&mut self, data: Bytes) -> Result<()> {
        self.with_file(move |file| file.write_all(&data)).await
    }

    async fn put_parts(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        self.with_file(move |file| pieces.iter().try_for_each(|piece| file.write_all(piece))).await
    }

    async fn complete(mut self: Box<Self>) -> Result<()> {
        self.with_file(|file| file.sync_all()).await?;
        drop(self.take_file()?);
        tokio::fs::rename(&self.tmp, &self.path).await.map_err(|e| Error::io(&self.path, e))?;
        tracing::trace!(key = %self.key, "object complete");
        Ok(())
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.file.take();
        match tokio::fs::remove_file(&self.tmp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&self.tmp, e)),
        }
    }
}

impl Drop for LocalUpload {
    /// An upload dropped without `complete` or `abort` (a cancelled task) removes its
    /// temporary file, so nothing partial is left behind.
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(root: &Path) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.to_string_lossy().ends_with(".byob-partial") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, &mut out);
        out
    }

    #[tokio::test]
    async fn a_dropped_upload_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LocalSink::new(dir.path());
        let mut up = sink.start("a/b.bin", &PutOptions::default()).await.expect("start");
        up.put_part(Bytes::from_static(b"half")).await.expect("part");
        assert_eq!(leftovers(dir.path()).len(), 1, "the partial file exists while writing");
        drop(up);
        assert!(leftovers(dir.path()).is_empty());
        assert!(!dir.path().join("a/b.bin").exists());
    }

    #[tokio::test]
    async fn rejects_keys_that_escape_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LocalSink::new(dir.path().join("root"));
        for key in ["../x", "a/../../x", "/etc/passwd", "", "a//b", "a/./b", "dir/"] {
            let err = sink.start(key, &PutOptions::default()).await.err();
            assert!(err.is_some(), "{key:?} was accepted");
        }
    }
}
