//! The CLI contract, offline: each case under `tests/cli/` runs the `ferry` binary with a
//! clean environment and pins its exit code, stdout and stderr (bad tags and events, broken
//! configuration, `--help`). No AWS, no registry, no world: plain `cargo test` runs them.
//! After an intended change, `TRYCMD=overwrite cargo test --test cli` rewrites the expected
//! output; read the diff before committing it.

#[test]
fn cli_contract() {
    trycmd::TestCases::new().case("tests/cli/*.toml");
}
