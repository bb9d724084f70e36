//! A full disk under the store: nothing answered 2xx is lost, the daemon
//! stops at the first write it cannot make (exit 3, for its supervisor)
//! with the cause and what to do in its log, webhooks meanwhile fail (503
//! or no answer) so their senders send them again, and once there is space
//! a restart delivers everything once and in order. The disk is a small tmpfs
//! mounted for the test (the tests run as root).

use crate::common::*;
use deskbridge::event::Audience;
use deskbridge::tools::sample_desk::Fault;
use std::process::Command;

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount a tmpfs (the tests run as root)");
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success(), "remount the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_loses_and_doubles_nothing() {
    // The test script runs as root (it installs the services); a
    // developer's unprivileged run cannot mount, and is told so.
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!(
            "SKIPPED: mounting the small disk needs root (bash scripts/test.sh runs as root)"
        );
        return;
    }
    let svc = Party::start("svc").await;
    let vendor = Party::start("vendor").await;
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), "12m");
    let conf = format!(
        "{PARTIES}{}{}",
        svc.toml(dir.path(), "svc", ""),
        vendor.toml(dir.path(), "vendor", "")
    );
    let mut gw = Gateway::start_with(dir, &conf);
    // Unmounted before the gateway's directory is removed.
    let disk = disk;
    svc.connect(&gw);
    vendor.connect(&gw);
    let t = svc.desk.create_ticket("Disk", "x", &[], "Ann");
    eventually("accepted", 10, || async { svc.desk.unsent() == 0 }).await;
    let out = gw.cli(&["transfer", "--from", &format!("svc:{t}"), "--to", "vendor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("vendor ticket", 10, || async {
        vendor.desk.tickets().len() == 1
    })
    .await;
    let vt = vendor.desk.tickets().remove(0).id;

    // The vendor is away, so everything stays in the store until the disk
    // is full and webhooks are refused.
    vendor
        .desk
        .set_fault(Some(Fault::Status(503, "away".into())), None);
    let body = "y".repeat(4000);
    // Sent as fast as the daemon takes them, until the disk is full and
    // the daemon stops rather than promise what it cannot keep.
    let mut sent = 0;
    let code = loop {
        if let Some(status) = gw.exited() {
            break status.code();
        }
        assert!(sent < 20_000, "the disk never filled:\n{}", gw.log());
        if svc.desk.unsent() < 100 {
            for _ in 0..50 {
                svc.desk.comment(
                    &t,
                    &format!("{sent:05} {body}"),
                    Audience::Partner,
                    "Ann",
                    &[],
                );
                sent += 1;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(code, Some(3), "{}", gw.log());
    let log = gw.log();
    // Whichever write failed first (the flush of an ingest, the relay's
    // record) says so.
    assert!(
        log.contains("the disk holding data_dir is full: free space there"),
        "{log}"
    );
    assert!(!log.contains("another deskbridge"), "{log}");
    vendor.desk.set_fault(None, None);

    // Space again, and a restart: everything the desk sent arrives once,
    // in order, what was refused included (the desk sent it again).
    disk.resize("256m");
    gw.spawn();
    eventually("all delivered", 60, || async {
        svc.desk.unsent() == 0
            && vendor
                .desk
                .ticket(&vt)
                .is_some_and(|v| v.comments.len() >= sent)
    })
    .await;
    // Nothing more comes (a double would come after the last one).
    eventually("idle", 20, || async { gw.idle().await }).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got: Vec<String> = vendor
        .desk
        .ticket(&vt)
        .unwrap()
        .comments
        .iter()
        .map(|c| c.body[..5].to_string())
        .collect();
    let want: Vec<String> = (0..sent).map(|i| format!("{i:05}")).collect();
    assert_eq!(got.len(), want.len(), "doubled or lost");
    assert!(got == want, "out of order");
}
