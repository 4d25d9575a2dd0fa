//! Puts a hash of the kernels' sources into `QUILL_KERNELS_SOURCE_HASH` (see src/source_hash.rs).

#[path = "src/source_hash.rs"]
mod source_hash;

fn main() {
    println!("cargo:rerun-if-changed=src");
    let hash = source_hash::of_folder(std::path::Path::new("src"))
        .expect("quill-gpu-kernels' build script reads its src folder");
    println!("cargo:rustc-env=QUILL_KERNELS_SOURCE_HASH={hash}");
}
