//! Passes the build's target triple to the tidy test, which checks the licences of the
//! dependencies that ship on this platform.

fn main() {
    println!("cargo:rustc-env=RONGHE_HOST_TARGET={}", std::env::var("TARGET").unwrap_or_default());
}
