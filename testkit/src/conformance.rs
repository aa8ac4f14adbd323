//! The one test suite every [`ObjectSink`] implementation must pass (object_store's
//! `integration` pattern). Sinks are write-only, so the caller supplies `read`, a way to
//! fetch an object's bytes out of band (a folder read, or an S3 GetObject with admin
//! credentials), returning `None` when no object exists under the key.

use bytes::Bytes;

use byob::sink::{ObjectSink, PutOptions};

/// Runs every check; panics with a message naming the failed check.
pub async fn run_all(sink: &dyn ObjectSink, read: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync)) {
    small_object(sink, read).await;
    multi_part_object(sink, read).await;
    overwrite_replaces(sink, read).await;
    abort_leaves_nothing(sink, read).await;
    nothing_visible_before_complete(sink, read).await;
}

fn options() -> PutOptions {
    let mut o = PutOptions { content_type: "application/octet-stream".into(), ..Default::default() };
    o.metadata.insert("byob-run".into(), "2023-03-14T04:03".into());
    o
}

/// A small object stored with `put` reads back byte for byte.
pub async fn small_object(sink: &dyn ObjectSink, read: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync)) {
    let key = "conformance/small/receipt.json";
    sink.put(key, Bytes::from_static(b"{\"ok\":true}\n"), &options()).await.expect("put small");
    assert_eq!(read(key).as_deref(), Some(&b"{\"ok\":true}\n"[..]), "small object");
}

/// Many parts of uneven sizes (larger than one S3 part) concatenate exactly.
pub async fn multi_part_object(sink: &dyn ObjectSink, read: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync)) {
    let key = "conformance/multi/table_000000000000.bin";
    let mut expected = Vec::new();
    let mut up = sink.start(key, &options()).await.expect("start multi");
    for (i, len) in [1usize, 3 << 20, 7 << 20, 17, 5 << 20].into_iter().enumerate() {
        let part: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
        expected.extend_from_slice(&part);
        up.put_part(Bytes::from(part)).await.expect("put_part");
    }
    up.complete().await.expect("complete multi");
    let got = read(key).expect("multi-part object exists");
    assert_eq!(got.len(), expected.len(), "multi-part object length");
    assert!(got == expected, "multi-part object bytes differ");
}

/// Completing an upload under an existing key replaces the object (a re-run rewrites keys).
pub async fn overwrite_replaces(sink: &dyn ObjectSink, read: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync)) {
    let key = "conformance/overwrite/receipt.json";
    sink.put(key, Bytes::from_static(b"first"), &options()).await.expect("first put");
    sink.put(key, Bytes::from_static(b"second"), &options()).await.expect("second put");
    assert_eq!(read(key).as_deref(), Some(&b"second"[..]), "overwrite");
}

/// An aborted upload leaves no object, and an existing object under the key is untouched.
pub async fn abort_leaves_nothing(sink: &dyn ObjectSink, read: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync)) {
    let key = "conformance/abort/new.bin";
    let mut up = sink.start(key, &options()).await.expect("start abort");
    up.put_part(Bytes::from(vec![1u8; 6 << 20])).await.expect("part before abort");
    up.abort().await.expect("abort");
    assert!(read(key).is_none(), "aborted upload left an object");

    let kept = "conformance/abort/kept.bin";
    sink.put(kept, Bytes::from_static(b"old"), &options()).await.expect("put kept");
    let mut up = sink.start(kept, &options()).await.expect("start over kept");
    up.put_part(Bytes::from_static(b"new, never completed")).await.expect("part");
    up.abort().await.expect("abort over kept");
    assert_eq!(read(kept).as_deref(), Some(&b"old"[..]), "abort changed an existing object");
}

/// Until `complete`, nothing is visible under the key.
pub async fn nothing_visible_before_complete(sink: &dyn ObjectSink, read: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync)) {
    let key = "conformance/pending/file.bin";
    let mut up = sink.start(key, &options()).await.expect("start pending");
    up.put_part(Bytes::from_static(b"partial")).await.expect("part");
    assert!(read(key).is_none(), "object visible before complete");
    up.complete().await.expect("complete pending");
    assert_eq!(read(key).as_deref(), Some(&b"partial"[..]));
}

#[cfg(test)]
mod tests {
    use byob::sink::LocalSink;

    #[tokio::test]
    async fn the_local_folder_sink_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LocalSink::new(dir.path());
        super::run_all(&sink, &|key| std::fs::read(dir.path().join(key)).ok()).await;
        let left = crate::files::files_under(dir.path());
        assert!(left.iter().all(|f| !f.ends_with(".byob-partial")), "partial files left: {left:?}");
    }
}
