use std::process::Command;

use super::server;

#[test]
fn sipp_uac_completes_50_calls() {
    let srv = server("", 400);
    let dir = std::env::temp_dir().join(format!("sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("sipp")
        .current_dir(&dir)
        .args([
            "-sn",
            "uac",
            "-s",
            "echo",
            &srv.sip.to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            "0",
        ])
        .args([
            "-m",
            "50",
            "-r",
            "25",
            "-l",
            "25",
            "-timeout",
            "60s",
            "-nostdin",
            "-trace_stat",
        ])
        .output()
        .expect("sipp must be installed (apt-get install sip-tester; .ci/run does it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sipp failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let successful = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Successful call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse::<u32>().ok());
    assert_eq!(successful, Some(50), "{stdout}");
}
