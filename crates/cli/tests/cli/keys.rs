//! Master key rotation with the real binary: `tollgate serve` restarted with
//! `TOLLGATE_MASTER_KEYS` (old, new), `tollgate admin reencrypt`, then the old key dropped.

use serde_json::Value;

use crate::serve::{Server, data_dir, start};

const ADMIN: &str = "tg_admin_rotation-e2e";
const OLD: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const NEW: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn json(server: &Server, args: &[&str], stdin: Option<&str>) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let (code, out, err) = server.admin(ADMIN, &args, stdin);
    assert_eq!(code, 0, "tollgate admin {args:?}: {err}\n{out}");
    serde_json::from_str(&out).unwrap()
}

/// Each workspace resolves (its MiniMax key decrypts): none is `SECRET_UNREADABLE`.
fn assert_readable(server: &Server, workspaces: &[String]) {
    for ws in workspaces {
        let r = json(server, &["billing-mode", ws], None);
        assert_eq!(r["resolved_mode"], "byok", "{r}");
    }
}

#[test]
fn reencrypt_moves_every_secret_to_the_newest_key() {
    let dir = data_dir("keys-rotation");
    let serve = |keys: (&str, &str)| start(&dir, &[], &[("TOLLGATE_ADMIN_TOKEN", ADMIN), keys]);

    let server = serve(("TOLLGATE_MASTER_KEY", OLD));
    let org = json(&server, &["org", "create", "rotation"], None)["id"].as_str().unwrap().to_owned();
    let mut workspaces = Vec::new();
    for i in 0..5 {
        let name = format!("ws-{i}");
        let args = [
            "workspace",
            "create",
            "--org",
            &org,
            "--name",
            &name,
            "--runtime",
            "claude-code",
            "--model",
            "MiniMax-M2.7",
        ];
        let ws = json(&server, &args, None)["id"].as_str().unwrap().to_owned();
        let (code, _, err) =
            server.admin(ADMIN, &["workspace", "secret", "set", &ws, "MINIMAX_API_KEY"], Some("mm-key"));
        assert_eq!(code, 0, "{err}");
        workspaces.push(ws);
    }
    assert_readable(&server, &workspaces);
    drop(server);

    // Both variables at once: a configuration error that says which to keep.
    let out = std::process::Command::new(crate::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()])
        .env("TOLLGATE_MASTER_KEY", OLD)
        .env("TOLLGATE_MASTER_KEYS", format!("{OLD},{NEW}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TOLLGATE_MASTER_KEYS or TOLLGATE_MASTER_KEY"), "{err}");
    assert!(!err.contains(OLD) && !err.contains(NEW), "no key in the message");

    // Old and new: everything still reads; reencrypt moves the five secrets in batches of 2.
    let keys = format!("{OLD},{NEW}");
    let server = serve(("TOLLGATE_MASTER_KEYS", &keys));
    assert_readable(&server, &workspaces);
    let moved = json(&server, &["reencrypt", "--batch-size", "2"], None);
    assert_eq!(
        (moved["moved"].as_u64(), moved["unreadable"].as_u64(), moved["batches"].as_u64()),
        (Some(5), Some(0), Some(3)),
        "{moved}"
    );
    let (code, out, err) = server.admin(ADMIN, &["reencrypt"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Moved 0 secrets to master key "), "{out}");
    drop(server);

    // The new key alone reads every secret.
    let server = serve(("TOLLGATE_MASTER_KEYS", NEW));
    assert_readable(&server, &workspaces);
    drop(server);

    // The old key alone reads none, and reencrypt says so (exit 1) without touching them.
    let server = serve(("TOLLGATE_MASTER_KEY", OLD));
    let r = json(&server, &["billing-mode", &workspaces[0]], None);
    assert_eq!(r["error"]["code"], "SECRET_UNREADABLE", "{r}");
    let (code, _, err) = server.admin(ADMIN, &["reencrypt"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("5 decrypt with no configured key"), "{err}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
