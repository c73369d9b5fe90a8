// The build script of each binary package (vr-agent, kvm-agent, vrctl)
// `include!`s this: it records the git commit for `--version` as
// AGENTS_BUILD_COMMIT. Only release builds (what ships: images, packages,
// the lab) ask git and rebuild when the commit moves; debug builds (tests)
// say so instead, so a commit does not rebuild every test binary.

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../common/build_commit.rs");
    println!("cargo:rerun-if-env-changed=AGENTS_BUILD_COMMIT");
    let commit = if let Ok(given) = std::env::var("AGENTS_BUILD_COMMIT") {
        given
    } else if std::env::var("PROFILE").as_deref() == Ok("release") {
        for what in ["HEAD", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", what]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(p) = git(&["rev-parse", "--git-path", &r])
        {
            println!("cargo:rerun-if-changed={p}");
        }
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
    } else {
        "unrecorded in debug builds".into()
    };
    println!("cargo:rustc-env=AGENTS_BUILD_COMMIT={commit}");
}
