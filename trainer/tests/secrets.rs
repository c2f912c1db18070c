//! The Hugging Face token is used, and never shown: with `HF_TOKEN` set and logging at its most
//! verbose, a Hub download that fails sends the token to the Hub but prints it nowhere and writes
//! it into no file of the run.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A Hub stand-in on loopback that answers 401 to everything and keeps the requests' headers.
fn hub() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while let Ok(n) = reader.read_line(&mut head) {
                if n == 0 || head.ends_with("\r\n\r\n") {
                    break;
                }
            }
            log.lock().unwrap().push(head);
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    (url, seen)
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn the_hf_token_reaches_the_hub_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    let yaml = std::fs::read_to_string(&config).unwrap();
    let model_line = yaml.lines().nth(1).unwrap().to_string();
    std::fs::write(
        &config,
        yaml.replace(&model_line, "  hub: example-org/private-model"),
    )
    .unwrap();
    let token = format!("hf_{:032x}", rand::random::<u128>());
    let (url, seen) = hub();
    let out = common::ferrotune()
        .args(["train", "--config"])
        .arg(&config)
        .env("HF_TOKEN", &token)
        .env("HF_ENDPOINT", &url)
        .env("HF_HOME", dir.path().join("hf"))
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("example-org/private-model"), "{stderr}");
    assert!(
        stderr.contains("HF_TOKEN"),
        "the error says what to check:\n{stderr}"
    );
    let requests = seen.lock().unwrap().join("\n").to_ascii_lowercase();
    assert!(
        requests.contains(&format!("authorization: bearer {token}")),
        "the token was not sent: {requests}"
    );
    assert!(!stdout.contains(&token), "the token is in stdout");
    assert!(
        !stderr.contains(&token),
        "the token is in stderr:\n{stderr}"
    );
    let leaked = files_containing(dir.path(), token.as_bytes());
    assert!(leaked.is_empty(), "the token is written in {leaked:?}");
}
