//! Where the tests find their text, shared by every runner's tests.

use std::path::{Path, PathBuf};

/// The repository root (tests run with the crate directory as working directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Tiny Shakespeare copied into `dir` from `../shared/data` beside the checkout when present;
/// otherwise a text written there (tests never use the network). A copy, because training
/// prepares token files beside its corpus and some tests edit it.
pub fn corpus(dir: &Path) -> PathBuf {
    let shared = repo_root().join("../shared/data/tinyshakespeare.txt");
    let path = dir.join("corpus.txt");
    if shared.exists() {
        std::fs::copy(&shared, &path).unwrap();
        return path;
    }
    let verses = [
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
        "All:\nSpeak, speak.\n\n",
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n",
        "ROMEO:\nBut, soft! what light through yonder window breaks?\n\n",
        "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n",
    ];
    let text: String = (0..3000)
        .map(|i| verses[(i * 7 + i / 5) % verses.len()])
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}
