//! Test fixtures: a real Pebble CA per test on ports of its own, a temporary
//! environment with a config, and a builder for running the `renewd` binary.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// `../shared/tools`, or `$RENEWD_TOOLS` when the checkout lives elsewhere.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("RENEWD_TOOLS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools"),
        PathBuf::from,
    )
}

/// Ports handed out in this process, so two fixtures never get the same one even
/// though each probe releases its socket before Pebble binds it.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port free for both TCP and UDP right now.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = tcp.local_addr().expect("local addr").port();
        let mut taken = TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !taken.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
}

/// A running Pebble + challtestsrv, stopped and removed on drop.
pub struct Pebble {
    env: Vec<(String, String)>,
    /// Directory URL.
    pub dir_url: String,
    /// CA certificate for Pebble's own HTTPS listener (`ca.trust`).
    pub listener_ca: PathBuf,
    /// Pebble's issuing root, for verifying issued chains.
    pub root: PathBuf,
    /// Port Pebble's VA dials for http-01.
    pub http01_port: u16,
    /// Port Pebble's VA dials for tls-alpn-01.
    pub tlsalpn01_port: u16,
    /// Management API URL (https, trust `listener_ca`).
    pub mgmt_url: String,
}

impl Pebble {
    /// Starts Pebble issuing 90-day certificates only (`PEBBLE_PROFILES=default`),
    /// so validity is deterministic.
    pub fn start(state_dir: &Path) -> Self {
        Self::start_with(state_dir, &[("PEBBLE_PROFILES", "default")])
    }

    /// Starts Pebble with extra environment (e.g. `PEBBLE_WFE_NONCEREJECT`).
    pub fn start_with(state_dir: &Path, extra: &[(&str, &str)]) -> Self {
        let ports = [
            ("PEBBLE_PORT", free_port()),
            ("PEBBLE_MGMT_PORT", free_port()),
            ("CHALLTESTSRV_DNS_PORT", free_port()),
            ("CHALLTESTSRV_MGMT_PORT", free_port()),
            ("PEBBLE_HTTP01_PORT", free_port()),
            ("PEBBLE_TLSALPN01_PORT", free_port()),
        ];
        let mut env: Vec<(String, String)> = ports
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        env.push(("PEBBLE_STATE_DIR".into(), state_dir.display().to_string()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let out = Command::new("bash")
            .arg(tools_dir().join("pebble-up.sh"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run pebble-up.sh");
        assert!(
            out.status.success(),
            "pebble-up.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = |name: &str| {
            ports
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, p)| *p)
                .unwrap()
        };
        Self {
            dir_url: format!("https://127.0.0.1:{}/dir", port("PEBBLE_PORT")),
            listener_ca: state_dir.join("certs/ca.pem"),
            root: state_dir.join("pebble-root.pem"),
            http01_port: port("PEBBLE_HTTP01_PORT"),
            tlsalpn01_port: port("PEBBLE_TLSALPN01_PORT"),
            mgmt_url: format!("https://127.0.0.1:{}", port("PEBBLE_MGMT_PORT")),
            env,
        }
    }

    /// Stops Pebble (the CA becomes unreachable).
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(tools_dir().join("pebble-down.sh"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }

    /// The `[ca.NAME]` table for this Pebble.
    pub fn ca_toml(&self, name: &str) -> String {
        format!(
            "[ca.{name}]\ndirectory = \"{}\"\ntrust = \"{}\"\ncontact = [\"mailto:ops@example.com\"]\n",
            self.dir_url,
            self.listener_ca.display()
        )
    }

    /// An http-01 standalone solver on the port Pebble's VA dials.
    pub fn http01_solver_toml(&self, name: &str) -> String {
        format!(
            "[solver.{name}]\ntype = \"http-01\"\nlisten = \"127.0.0.1:{}\"\n",
            self.http01_port
        )
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A temporary directory with a config file, a state dir and a Pebble.
pub struct Env {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The CA.
    pub pebble: Pebble,
}

impl Env {
    /// A new environment with its own Pebble.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pebble = Pebble::start(&dir.path().join("pebble"));
        Self { dir, pebble }
    }

    /// The state directory renewd uses.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The config file path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("renewd.toml")
    }

    /// Writes a config: `[daemon]` pointing at this env's state dir, a CA `pebble`,
    /// an http-01 solver `web`, then `rest`.
    pub fn write_config(&self, rest: &str) {
        let text = format!(
            "[daemon]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n\n{}\n{}\n{rest}",
            self.state_dir().display(),
            self.dir.path().join("control.sock").display(),
            self.pebble.ca_toml("pebble"),
            self.pebble.http01_solver_toml("web"),
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Runs `renewd --config <this env's config> args...`.
    pub fn renewd(&self, args: &[&str]) -> Run {
        run_renewd(&self.config_path(), args)
    }

    /// The store, read through the library.
    pub fn store(&self) -> renewd::store::Store {
        renewd::store::Store::open(&self.state_dir()).expect("open store")
    }
}

/// The outcome of one `renewd` invocation.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the `renewd` binary with `--config config`.
pub fn run_renewd(config: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_renewd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RENEWD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("run renewd");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `openssl verify` of `live/<name>` against `root`.
pub fn verify_chain(root: &Path, live: &Path) -> Result<(), String> {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(live.join("chain.pem"))
        .arg(live.join("cert.pem"))
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
