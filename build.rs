//! Links Debian's system OpenBLAS (package `libopenblas-dev`); see README "Set-up".
fn main() {
    println!("cargo:rustc-link-lib=dylib=openblas");
    println!("cargo:rerun-if-changed=build.rs");
}
