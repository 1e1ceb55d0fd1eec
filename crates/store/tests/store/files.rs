//! SQLite's files on disk: the database, its `-wal` and its `-shm` are owner-only (0600).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tollgate_policy::Micros;
use tollgate_store::{MasterKey, NewOrg};

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-store-files-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens the store at `db`, writes a row, and returns the modes of the three files while the
/// store is still open (the `-wal` and `-shm` exist only then).
async fn modes_after_a_write(db: &Path) -> [u32; 3] {
    let key = MasterKey::from_base64(&crate::key_b64()).unwrap();
    let store = tollgate_store::connect(&format!("sqlite://{}", db.display()), key).await.unwrap();
    store
        .create_org(&NewOrg {
            name: "perm".to_owned(),
            default_billing_mode: None,
            credit_micros: Micros::new(1),
            ..NewOrg::default()
        })
        .await
        .unwrap();
    let modes = [mode(db), mode(&sibling(db, "-wal")), mode(&sibling(db, "-shm"))];
    drop(store);
    modes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_and_its_wal_and_shm_are_owner_only() {
    let dir = fresh_dir();
    let db = dir.join("tollgate.db");
    assert_eq!(modes_after_a_write(&db).await, [0o600; 3]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_left_readable_by_an_older_version_are_made_owner_only() {
    let dir = fresh_dir();
    let db = dir.join("tollgate.db");
    // An empty file is an empty database to SQLite; an empty WAL holds no frames.
    for path in [db.clone(), sibling(&db, "-wal")] {
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(mode(&path), 0o644);
    }
    assert_eq!(modes_after_a_write(&db).await, [0o600; 3]);
    std::fs::remove_dir_all(&dir).unwrap();
}
