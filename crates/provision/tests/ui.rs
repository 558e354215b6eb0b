//! What the compiler says when a promise is broken. Each `ui/*.rs` must fail
//! to compile with exactly the message in the `.stderr` beside it.
//! Regenerate after an intended change with `TRYBUILD=overwrite`.

#[test]
fn compile_errors_name_the_missing_service_and_the_lifetime_mistake() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    // Every error `#[provide]` produces, and the two promises above kept
    // through it. One `TestCases`, so the crate and its dependencies are
    // built once for both sets.
    #[cfg(feature = "macros")]
    cases.compile_fail("tests/ui/provide/*.rs");
}
