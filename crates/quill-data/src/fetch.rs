//! Downloading Tiny Shakespeare (or copying a local file) and verifying it before keeping it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The raw file in karpathy/char-rnn, the canonical public copy.
pub const TINY_SHAKESPEARE_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";

/// What a good copy of a file looks like.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub len: u64,
    pub sha256: &'static str,
}

pub const TINY_SHAKESPEARE: Expected = Expected {
    len: 1_115_394,
    sha256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "download of {url} failed: {reason}; place the file by hand (e.g. download it in a browser) and run `data fetch --from FILE`"
    )]
    Download { url: String, reason: String },
    #[error("{source_name} failed verification: {reason}; the file was not kept")]
    Verify { source_name: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether `path` already holds a verified copy.
pub fn is_present(path: &Path, expected: Expected) -> bool {
    std::fs::read(path).is_ok_and(|bytes| verify(&bytes, expected).is_ok())
}

/// Downloads `url` into `out`, keeping it only if it matches `expected`.
pub fn download(url: &str, out: &Path, expected: Expected) -> Result<(), FetchError> {
    let failed = |reason: String| FetchError::Download {
        url: url.to_owned(),
        reason,
    };
    let response = ureq::get(url)
        .timeout(std::time::Duration::from_secs(60))
        .call()
        .map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(expected.len + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    store(&bytes, url, out, expected)
}

/// Copies a local file into `out`, with the same check as a download.
pub fn copy_from(from: &Path, out: &Path, expected: Expected) -> Result<(), FetchError> {
    let bytes = std::fs::read(from).map_err(|source| FetchError::Read {
        path: from.to_owned(),
        source,
    })?;
    store(&bytes, &from.display().to_string(), out, expected)
}

fn verify(bytes: &[u8], expected: Expected) -> Result<(), String> {
    if bytes.len() as u64 != expected.len {
        return Err(format!("{} bytes, expected {}", bytes.len(), expected.len));
    }
    let digest = format!("{:x}", Sha256::digest(bytes));
    if digest != expected.sha256 {
        return Err(format!("sha256 {digest}, expected {}", expected.sha256));
    }
    Ok(())
}

/// Verifies then writes through a temporary file and a rename, so `out` is never half written.
fn store(
    bytes: &[u8],
    source_name: &str,
    out: &Path,
    expected: Expected,
) -> Result<(), FetchError> {
    verify(bytes, expected).map_err(|reason| FetchError::Verify {
        source_name: source_name.to_owned(),
        reason,
    })?;
    let write_error = |source| FetchError::Write {
        path: out.to_owned(),
        source,
    };
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    tmp.write_all(bytes).map_err(write_error)?;
    tmp.persist(out).map_err(|e| write_error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    const BODY: &[u8] = b"To be, or not to be, that is the question.\n";

    /// Serves `body` once over HTTP on 127.0.0.1 and returns the URL.
    fn serve_once(body: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/input.txt", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body).unwrap();
        });
        url
    }

    fn real_expected() -> Expected {
        let digest = format!("{:x}", Sha256::digest(BODY));
        Expected {
            len: BODY.len() as u64,
            sha256: Box::leak(digest.into_boxed_str()),
        }
    }

    #[test]
    fn a_verified_download_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("data/input.txt");
        let expected = real_expected();
        download(&serve_once(BODY), &out, expected).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), BODY);
        assert!(is_present(&out, expected));
    }

    #[test]
    fn a_corrupted_download_is_rejected_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("input.txt");
        let err = download(
            &serve_once(b"To be, or not to be, that is the questioN.\n"),
            &out,
            real_expected(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("failed verification") && err.contains("sha256"),
            "{err}"
        );
        assert!(!out.exists());
        assert!(!is_present(&out, real_expected()));
    }

    #[test]
    fn an_unreachable_server_says_how_to_place_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/input.txt");
        let err = download(&url, &dir.path().join("x.txt"), real_expected())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("download of") && err.contains("--from"),
            "{err}"
        );
    }

    #[test]
    fn copy_from_checks_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.txt");
        std::fs::write(&good, BODY).unwrap();
        let out = dir.path().join("out.txt");
        copy_from(&good, &out, real_expected()).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), BODY);

        std::fs::write(&good, &BODY[1..]).unwrap();
        let out2 = dir.path().join("out2.txt");
        let err = copy_from(&good, &out2, real_expected())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bytes, expected"), "{err}");
        assert!(!out2.exists());
    }
}
