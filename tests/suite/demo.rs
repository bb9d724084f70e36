#[test]
fn demo_runs_the_three_party_story_and_exits_zero() {
    let out = std::process::Command::new(crate::common::BIN)
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Checks passed"), "{stdout}");
    // what the vendor sees never includes Acme's internal note
    let vendor_view = stdout.rsplit("Contoso desk #1").next().unwrap();
    assert!(!vendor_view.contains("premium SLA"), "{stdout}");
}
