//! The command line, run as a real process against its own data directory: outputs, exit codes,
//! isolation between users, purge, export and import, and keys that the server accepts.

use crate::helpers::{body, spawn_app_with};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use tempfile::TempDir;

const SUCCESS: i32 = 0;
const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const CONFLICT: i32 = 4;
const INVALID_CONFIG: i32 = 5;
const UNKNOWN_ID: &str = "01890000-0000-7000-8000-000000000000";

/// The binary with a data directory of its own and no `ANGEL_MEMORY_*` settings from outside.
struct Cli {
    dir: TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command with `--data-dir` set; more environment may be added by the caller.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_angel-memory"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ANGEL_MEMORY_") {
                command.env_remove(name);
            }
        }
        command.env("NO_COLOR", "1");
        command.arg("--data-dir").arg(self.path()).args(args);
        command
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run the binary")
    }

    /// Runs and returns the exit code, showing the output if the test then fails.
    fn code(&self, args: &[&str]) -> i32 {
        let output = self.output(args);
        let code = output.status.code().expect("an exit code");
        eprintln!(
            "{args:?} -> {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        code
    }

    /// Runs a command that must succeed, and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "{args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Runs a command with `--json` that must succeed, and parses its output.
    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let text = self.ok(&with_json);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    fn add_user(&self, uid: &str) {
        let user = self.json(&["user", "add", uid]);
        assert_eq!(user["uid"], uid);
    }

    /// Adds a memory and returns its id.
    fn add_memory(&self, uid: &str, content: &str) -> String {
        let memory = self.json(&["memory", "add", "--user", uid, content]);
        assert_eq!(memory["uid"], uid);
        assert_eq!(memory["content"], content);
        memory["id"].as_str().expect("id").to_owned()
    }

    fn list(&self, uid: &str, state: &str) -> Vec<Value> {
        let page = self.json(&[
            "memory", "list", "--user", uid, "--state", state, "--limit", "200",
        ]);
        page["items"].as_array().expect("items").clone()
    }
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|m| m["id"].as_str().unwrap()).collect()
}

#[test]
fn help_documents_exit_codes_and_commands() {
    let cli = Cli::new();
    let help = cli.ok(&["--help"]);
    for text in [
        "Exit codes",
        "0 success",
        "1 failure",
        "2 usage error",
        "3 not found",
        "4 conflict",
        "5 invalid configuration",
    ] {
        assert!(help.contains(text), "--help mentions {text:?}:\n{help}");
    }
    for command in [
        "serve", "migrate", "user", "key", "memory", "stats", "export", "import",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help lists {command}:\n{help}"
        );
    }
    let help = cli.ok(&["memory", "--help"]);
    for command in [
        "add", "list", "get", "update", "delete", "restore", "history", "purge",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "memory --help lists {command}:\n{help}"
        );
    }
    assert_eq!(cli.code(&["no-such-command"]), USAGE);
    assert_eq!(cli.code(&[]), USAGE);
}

#[test]
fn a_memory_lifecycle_through_the_cli() {
    let cli = Cli::new();
    assert!(cli.ok(&["migrate"]).contains("database ready"));
    cli.add_user("alice");
    let users = cli.ok(&["user", "list"]);
    assert!(users.lines().any(|l| l.starts_with("alice\t")), "{users}");

    let added = cli.json(&[
        "memory",
        "add",
        "--user",
        "alice",
        "likes green tea",
        "--category",
        "interesting",
        "--tag",
        "Food",
        "--tag",
        "drinks",
        "--metadata",
        r#"{"mood": "calm"}"#,
    ]);
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(added["version"], 1);
    assert_eq!(added["category"], "interesting");
    assert_eq!(added["tags"], serde_json::json!(["drinks", "food"]));
    assert_eq!(added["metadata"]["mood"], "calm");
    assert_eq!(added["source"], "manual");
    assert!(added["deleted_at"].is_null());
    // The same content again is the same memory, not a copy.
    let again = cli.json(&["memory", "add", "--user", "alice", "likes green tea"]);
    assert_eq!(again["id"], id.as_str());

    let got = cli.json(&["memory", "get", "--user", "alice", &id]);
    assert_eq!(got, added);
    // Without --json the record is still printed as (pretty) JSON.
    let pretty: Value =
        serde_json::from_str(&cli.ok(&["memory", "get", "--user", "alice", &id])).unwrap();
    assert_eq!(pretty, added);

    let updated = cli.json(&[
        "memory",
        "update",
        "--user",
        "alice",
        &id,
        "--content",
        "likes jasmine tea",
    ]);
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["content"], "likes jasmine tea");
    let history = cli.json(&["memory", "history", "--user", "alice", &id]);
    let history = history.as_array().expect("an array of versions");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["version"], 1);
    assert_eq!(history[0]["content"], "likes green tea");
    assert_eq!(history[1]["version"], 2);
    assert_eq!(history[1]["content"], "likes jasmine tea");
    // With the right expected version, an update goes through.
    let updated = cli.json(&[
        "memory",
        "update",
        "--user",
        "alice",
        &id,
        "--content",
        "likes oolong tea",
        "--expected-version",
        "2",
    ]);
    assert_eq!(updated["version"], 3);

    let other = cli.add_memory("alice", "lives in Lisbon");
    let filtered = cli.json(&[
        "memory", "list", "--user", "alice", "--tag", "food", "--state", "all",
    ]);
    assert_eq!(ids(filtered["items"].as_array().unwrap()), [id.as_str()]);
    let first = cli.json(&["memory", "list", "--user", "alice", "--limit", "1"]);
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    assert!(first["next_cursor"].is_string());

    let deleted = cli.json(&["memory", "delete", "--user", "alice", &id]);
    assert!(deleted["deleted_at"].is_string());
    assert_eq!(ids(&cli.list("alice", "deleted")), [id.as_str()]);
    assert_eq!(ids(&cli.list("alice", "active")), [other.as_str()]);
    assert_eq!(cli.list("alice", "all").len(), 2);
    // A deleted memory cannot be updated until it is restored.
    assert_eq!(
        cli.code(&["memory", "update", "--user", "alice", &id, "--content", "x"]),
        CONFLICT
    );
    let stats = cli.json(&["stats", "--user", "alice"]);
    assert_eq!(stats["active"], 1);
    assert_eq!(stats["deleted"], 1);

    let restored = cli.json(&["memory", "restore", "--user", "alice", &id]);
    assert!(restored["deleted_at"].is_null());
    assert_eq!(restored["version"], 3);
    assert!(cli.list("alice", "deleted").is_empty());
    let stats = cli.json(&["stats", "--user", "alice"]);
    assert_eq!(stats["active"], 2);
    assert_eq!(stats["deleted"], 0);
    assert_eq!(stats["versions"], 4);
    assert_eq!(stats["by_tag"]["food"], 1);
}

#[test]
fn exit_codes_for_missing_conflicting_and_invalid_input() {
    let cli = Cli::new();
    cli.add_user("alice");
    cli.add_user("bob");
    let id = cli.add_memory("alice", "alice's secret");
    let before = cli.json(&["memory", "get", "--user", "alice", &id]);

    // Not found: an unknown id, and another user's memory, whatever the command.
    assert_eq!(
        cli.code(&["memory", "get", "--user", "alice", UNKNOWN_ID]),
        NOT_FOUND
    );
    for args in [
        vec!["memory", "get", "--user", "bob", &id],
        vec!["memory", "history", "--user", "bob", &id],
        vec!["memory", "delete", "--user", "bob", &id],
        vec!["memory", "restore", "--user", "bob", &id],
        vec![
            "memory",
            "update",
            "--user",
            "bob",
            &id,
            "--content",
            "mine",
        ],
        vec![
            "memory",
            "update",
            "--user",
            "bob",
            &id,
            "--content",
            "mine",
            "--expected-version",
            "1",
        ],
    ] {
        assert_eq!(cli.code(&args), NOT_FOUND, "{args:?}");
    }
    assert!(cli.list("bob", "all").is_empty());
    assert_eq!(
        cli.json(&["memory", "get", "--user", "alice", &id]),
        before,
        "bob's attempts changed nothing"
    );
    assert_eq!(cli.json(&["stats", "--user", "bob"])["active"], 0);
    // A user that does not exist.
    assert_eq!(
        cli.code(&["memory", "add", "--user", "nobody", "hello"]),
        NOT_FOUND
    );

    // Conflicts: an existing user, a stale version, content another active memory has.
    assert_eq!(cli.code(&["user", "add", "alice"]), CONFLICT);
    assert_eq!(
        cli.code(&[
            "memory",
            "update",
            "--user",
            "alice",
            &id,
            "--content",
            "changed",
            "--expected-version",
            "99",
        ]),
        CONFLICT
    );
    let second = cli.add_memory("alice", "another thought");
    assert_eq!(
        cli.code(&[
            "memory",
            "update",
            "--user",
            "alice",
            &second,
            "--content",
            "alice's secret"
        ]),
        CONFLICT
    );
    assert_eq!(
        cli.json(&["memory", "get", "--user", "alice", &id]),
        before,
        "failed updates changed nothing"
    );

    // Usage errors: invalid values, and what clap refuses.
    for args in [
        vec!["user", "add", "a b"],
        vec!["user", "add", ""],
        vec!["memory", "add", "--user", "alice", ""],
        vec!["memory", "add", "--user", "alice", "  \n "],
        vec!["memory", "add", "--user", "a b", "hello"],
        vec![
            "memory",
            "add",
            "--user",
            "alice",
            "x",
            "--category",
            "nope",
        ],
        vec!["memory", "add", "--user", "alice", "x", "--metadata", "[1]"],
        vec!["memory", "add", "--user", "alice", "x", "--metadata", "{"],
        vec!["memory", "get", "--user", "alice", "not-a-uuid"],
        vec!["memory", "list", "--user", "alice", "--state", "gone"],
        vec!["memory", "list", "--user", "alice", "--limit", "0"],
        vec!["memory", "list", "--user", "alice", "--limit", "201"],
        vec!["memory", "update", "--user", "alice", &id],
        vec!["memory", "get", "--user", "alice"],
        vec!["memory", "add", "hello"],
        vec!["user", "delete", "bob"],
    ] {
        assert_eq!(cli.code(&args), USAGE, "{args:?}");
    }
    assert_eq!(
        cli.list("alice", "all").len(),
        2,
        "refused commands added nothing"
    );
    let users = cli.json(&["user", "list"]);
    let uids: Vec<&Value> = users
        .as_array()
        .expect("an array of users")
        .iter()
        .map(|u| &u["uid"])
        .collect();
    assert_eq!(uids, ["alice", "bob"], "bob is still there");

    // Invalid configuration, from the environment.
    for (name, value) in [
        ("ANGEL_MEMORY_LISTEN", "garbage"),
        ("ANGEL_MEMORY_NO_SUCH", "1"),
        ("ANGEL_MEMORY_ADMIN_TOKEN", "short"),
    ] {
        for args in [vec!["migrate"], vec!["stats", "--user", "alice"]] {
            let output = cli.command(&args).env(name, value).output().unwrap();
            assert_eq!(
                output.status.code(),
                Some(INVALID_CONFIG),
                "{name}={value} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let output = cli
        .command(&["migrate"])
        .arg("--config")
        .arg(cli.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(INVALID_CONFIG));

    // Erasing a user: only with --yes, and then their data is gone.
    assert_eq!(cli.code(&["user", "delete", "bob", "--yes"]), SUCCESS);
    let users = cli.ok(&["user", "list"]);
    assert!(!users.contains("bob"), "{users}");
    assert_eq!(cli.code(&["user", "delete", "bob", "--yes"]), NOT_FOUND);
    assert_eq!(cli.json(&["stats", "--user", "alice"])["active"], 2);
}

#[test]
fn purge_hard_deletes_only_what_it_should() {
    let cli = Cli::new();
    cli.add_user("alice");
    cli.add_user("bob");
    let gone = cli.add_memory("alice", "to be purged");
    let kept = cli.add_memory("alice", "to be kept");
    let bobs = cli.add_memory("bob", "bob's deleted memory");
    cli.ok(&["memory", "delete", "--user", "alice", &gone]);
    cli.ok(&["memory", "delete", "--user", "bob", &bobs]);

    // The default retention keeps a memory deleted just now.
    let report = cli.json(&["memory", "purge", "--user", "alice"]);
    assert_eq!(report["purged"], 0);
    assert_eq!(
        cli.code(&["memory", "get", "--user", "alice", &gone]),
        SUCCESS
    );

    let report = cli.json(&[
        "memory",
        "purge",
        "--user",
        "alice",
        "--older-than-days",
        "0",
    ]);
    assert_eq!(report["purged"], 1);
    assert_eq!(
        cli.code(&["memory", "get", "--user", "alice", &gone]),
        NOT_FOUND
    );
    assert_eq!(
        cli.code(&["memory", "history", "--user", "alice", &gone]),
        NOT_FOUND
    );
    assert_eq!(
        cli.code(&["memory", "restore", "--user", "alice", &gone]),
        NOT_FOUND
    );
    assert_eq!(ids(&cli.list("alice", "all")), [kept.as_str()]);
    // Only alice's: bob's deleted memory is still there, restorable.
    let bob = cli.json(&["memory", "get", "--user", "bob", &bobs]);
    assert!(bob["deleted_at"].is_string());
    let stats = cli.json(&["stats", "--user", "alice"]);
    assert_eq!(stats["active"], 1);
    assert_eq!(stats["deleted"], 0);
    assert_eq!(stats["versions"], 1);

    // Without --user, everyone's.
    let report = cli.json(&["memory", "purge", "--older-than-days", "0"]);
    assert_eq!(report["purged"], 1);
    assert_eq!(
        cli.code(&["memory", "get", "--user", "bob", &bobs]),
        NOT_FOUND
    );
    assert_eq!(ids(&cli.list("alice", "all")), [kept.as_str()]);
}

/// The memories of an export file, by id: content, number of versions, and whether deleted.
fn exported(text: &str) -> (String, BTreeMap<String, (Value, usize, bool)>) {
    let mut uid = String::new();
    let mut memories = BTreeMap::new();
    for line in text.lines() {
        let line: Value = serde_json::from_str(line).expect("a JSON line");
        match line["type"].as_str().unwrap() {
            "header" => uid = line["uid"].as_str().unwrap().to_owned(),
            "memory" => {
                let memory = &line["memory"];
                assert_eq!(memory["uid"], uid.as_str(), "{line}");
                let versions = line["versions"].as_array().unwrap().len();
                assert_eq!(memory["version"], versions, "{line}");
                memories.insert(
                    memory["id"].as_str().unwrap().to_owned(),
                    (
                        memory["content"].clone(),
                        versions,
                        memory["deleted_at"].is_string(),
                    ),
                );
            }
            "audit" => {}
            "end" => assert_eq!(line["memories"], memories.len()),
            other => panic!("unexpected line type {other}"),
        }
    }
    (uid, memories)
}

#[test]
fn export_and_import_move_a_users_memories() {
    let cli = Cli::new();
    for uid in ["alice", "dave", "erin"] {
        cli.add_user(uid);
    }
    let edited = cli.add_memory("alice", "first draft");
    cli.ok(&[
        "memory",
        "update",
        "--user",
        "alice",
        &edited,
        "--content",
        "second draft",
    ]);
    let deleted = cli.add_memory("alice", "a deleted thought");
    cli.ok(&["memory", "delete", "--user", "alice", &deleted]);
    cli.add_memory("alice", "a plain memory");
    cli.add_memory("dave", "dave's own memory");

    let file = cli.path().join("alice.jsonl");
    let file_arg = file.to_str().unwrap();
    cli.ok(&["export", "--user", "alice", "--output", file_arg]);
    let text = std::fs::read_to_string(&file).unwrap();
    let (uid, alice) = exported(&text);
    assert_eq!(uid, "alice");
    assert_eq!(alice.len(), 3);
    assert_eq!(alice[&edited].1, 2);
    assert!(alice[&deleted].2);
    // To standard output, the same memories.
    let (_, again) = exported(&cli.ok(&["export", "--user", "alice"]));
    assert_eq!(again, alice);

    // A file whose end line does not match what came before it is refused as a whole.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let end: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(end["type"], "end");
    let wrong_end = serde_json::json!({
        "type": "end",
        "memories": alice.len() + 1,
        "audit_events": end["audit_events"],
    });
    *lines.last_mut().unwrap() = wrong_end.to_string();
    let broken = cli.path().join("broken.jsonl");
    std::fs::write(&broken, lines.join("\n") + "\n").unwrap();
    let code = cli.code(&["import", "--user", "erin", broken.to_str().unwrap()]);
    assert_ne!(code, SUCCESS, "an inconsistent file is refused");
    assert!(cli.list("erin", "all").is_empty(), "nothing was imported");
    // So is one with a memory line missing, when the end line still counts it.
    let mut short: Vec<&str> = text.lines().collect();
    let memory_line = short
        .iter()
        .position(|l| l.starts_with(r#"{"type":"memory""#))
        .unwrap();
    short.remove(memory_line);
    std::fs::write(&broken, short.join("\n") + "\n").unwrap();
    assert_ne!(
        cli.code(&["import", "--user", "erin", broken.to_str().unwrap()]),
        SUCCESS
    );
    assert!(cli.list("erin", "all").is_empty(), "nothing was imported");
    assert_eq!(
        cli.code(&["import", "--user", "erin", "/no/such/file.jsonl"]),
        1
    );

    // Into another user: the same memories, now dave's, beside his own.
    let report = cli.json(&["import", "--user", "dave", file_arg]);
    assert_eq!(report["imported"], 3, "{report}");
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    let dave_file = cli.path().join("dave.jsonl");
    cli.ok(&[
        "export",
        "--user",
        "dave",
        "--output",
        dave_file.to_str().unwrap(),
    ]);
    let (uid, mut dave) = exported(&std::fs::read_to_string(&dave_file).unwrap());
    assert_eq!(uid, "dave");
    assert_eq!(dave.len(), 4);
    dave.retain(|id, _| alice.contains_key(id));
    assert_eq!(dave, alice, "ids, contents, version counts and states");
    let history = cli.json(&["memory", "history", "--user", "dave", &edited]);
    assert_eq!(history[0]["content"], "first draft");
    assert_eq!(history[1]["content"], "second draft");
    // Alice still has hers; importing the same file again changes nothing.
    assert_eq!(cli.list("alice", "all").len(), 3);
    let report = cli.json(&["import", "--user", "dave", file_arg]);
    assert_eq!(report["imported"], 0, "{report}");
    assert_eq!(report["unchanged"], 3, "{report}");
}

#[tokio::test]
async fn a_key_made_by_the_cli_works_against_the_server() {
    let cli = Cli::new();
    cli.add_user("alice");
    cli.add_user("bob");
    let id = cli.add_memory("alice", "made by the cli");
    cli.add_memory("bob", "bob's memory");

    let key = cli.ok(&["key", "create", "alice", "--name", "laptop"]);
    let key = key.trim().to_owned();
    assert!(!key.is_empty() && !key.contains(char::is_whitespace));
    let revoked = cli.json(&["key", "create", "alice", "--name", "old"]);
    let revoked_key = revoked["key"].as_str().expect("key").to_owned();
    let revoked_id = revoked["id"].as_str().expect("id").to_owned();
    assert_eq!(revoked["uid"], "alice");
    let keys = cli.json(&["key", "list", "alice"]);
    let keys = keys.as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    for listed in keys {
        let text = listed.to_string();
        assert!(
            !text.contains(&key) && !text.contains(&revoked_key),
            "never the secret: {text}"
        );
    }
    let info = cli.json(&["key", "revoke", "alice", &revoked_id]);
    assert!(info["revoked_at"].is_string());
    assert_eq!(
        cli.code(&["key", "revoke", "bob", &revoked_id]),
        NOT_FOUND,
        "bob cannot revoke alice's key"
    );
    assert!(
        cli.json(&["key", "list", "bob"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let dir = cli.path().to_owned();
    let app = spawn_app_with(|c| c.data_dir = dir).await;
    let response = app
        .request(Method::GET, "/v1/memories", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = body(response).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(ids(items), [id.as_str()], "{page}");
    assert_eq!(items[0]["uid"], "alice");
    assert_eq!(items[0]["content"], "made by the cli");

    let response = app
        .request(Method::GET, "/v1/memories", &revoked_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a revoked key is refused");
}
