//! Temporary WAV files of the synthesizer are removed after success, failure and timeout.
//! Alone in its own test binary (own process id in the file names), so no other test's files
//! can be in flight while it looks.

use std::time::Duration;

use huddle_prompts::{PromptConfig, Prompts};

fn leftovers() -> Vec<String> {
    let prefix = format!("huddle-tts-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

#[tokio::test]
async fn temporary_files_are_removed() {
    let ok = Prompts::new(reqwest::Client::new(), PromptConfig::default());
    ok.speech("Clean up after yourself", "WOMAN", "en-US", 8000)
        .await
        .unwrap();
    assert_eq!(leftovers(), Vec::<String>::new(), "after success");

    let failing = Prompts::new(
        reqwest::Client::new(),
        PromptConfig {
            tts_command: "false".into(),
            ..Default::default()
        },
    );
    failing
        .speech("Clean up", "WOMAN", "en-US", 8000)
        .await
        .unwrap_err();
    assert_eq!(leftovers(), Vec::<String>::new(), "after failure");

    let dir = std::env::temp_dir().join(format!("huddle-prompts-cleanup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("stuck-tts");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slow = Prompts::new(
        reqwest::Client::new(),
        PromptConfig {
            tts_command: script.display().to_string(),
            tts_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    );
    slow.speech("Clean up", "WOMAN", "en-US", 8000)
        .await
        .unwrap_err();
    assert_eq!(leftovers(), Vec::<String>::new(), "after a timeout");
    std::fs::remove_dir_all(&dir).unwrap();
}
